package retail.speed;

import java.io.Serializable;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import org.apache.spark.api.java.function.FlatMapGroupsWithStateFunction;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.KeyValueGroupedDataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.GroupState;
import org.apache.spark.sql.streaming.GroupStateTimeout;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.types.StructType;

/**
 * Stock per product and low-stock alerts, as a JVM stateful processor (no Python worker on the hot path).
 *
 * <p>Called from PySpark by speed_layer.transforms.inventory_updates through py4j. Input: one row per valid
 * restock or purchase event (event_id, event_type, event_time, product_id, quantity, kafka_partition,
 * kafka_offset, kafka_timestamp), watermarked on event_time. The topic is keyed by product_id, so one product's
 * events share a partition and Kafka offsets give their order. Per product and micro-batch the events are applied
 * in offset order; an event_id already applied is ignored (ids are remembered for the watermark's horizon); an
 * alert opens when stock falls below the threshold and resolves when it is back at or above it, at most one open
 * alert per product, stamped with the Kafka timestamp of the crossing event (arrival order, so a replay gives the
 * same alert). Output (update mode): one "inventory" row per product whose stock changed, one "alert_open" or
 * "alert_resolve" row per transition, each carrying the alert's whole state so far.
 */
public final class InventoryProcessor {

    /** Spark DDL of the output rows; speed_layer.transforms.INVENTORY_OUTPUT_SCHEMA must say the same. */
    public static final String OUTPUT_DDL = "row_kind string, product_id string, stock bigint, threshold int, "
            + "below_threshold boolean, last_event_time timestamp, alert_id string, alert_at timestamp, "
            + "stock_at_open bigint, opened_at timestamp, resolved_at timestamp";

    private InventoryProcessor() {
    }

    /** The per-product state kept in the checkpoint's state store. */
    public static final class State implements Serializable {
        private static final long serialVersionUID = 1L;
        public long stock;
        public String openAlertId;
        public long stockAtOpen;
        public Timestamp openedAt;
        /** event_id -> event time in epoch microseconds, for the watermark's horizon. */
        public HashMap<String, Long> seen = new HashMap<>();
    }

    private static final class ProductKey implements MapFunction<Row, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String call(Row row) {
            return row.getString(row.fieldIndex("product_id"));
        }
    }

    private static final class Apply implements FlatMapGroupsWithStateFunction<String, Row, State, Row> {
        private static final long serialVersionUID = 1L;
        private final int threshold;
        private final long horizonMicros;

        Apply(int threshold, long horizonMicros) {
            this.threshold = threshold;
            this.horizonMicros = horizonMicros;
        }

        private static long micros(Timestamp moment) {
            return moment.getTime() / 1000 * 1_000_000L + moment.getNanos() / 1000;
        }

        @Override
        public Iterator<Row> call(String productId, Iterator<Row> rows, GroupState<State> state) {
            List<Row> out = new ArrayList<>();
            if (state.hasTimedOut()) {
                return out.iterator();
            }
            State current = state.exists() ? state.get() : new State();
            List<Row> events = new ArrayList<>();
            rows.forEachRemaining(events::add);
            if (events.isEmpty()) {
                if (state.exists()) {
                    state.update(current); // a product seeded by an initial state with no event yet: keep it
                }
                return out.iterator();
            }
            int iId = events.get(0).fieldIndex("event_id");
            int iType = events.get(0).fieldIndex("event_type");
            int iTime = events.get(0).fieldIndex("event_time");
            int iQty = events.get(0).fieldIndex("quantity");
            int iPart = events.get(0).fieldIndex("kafka_partition");
            int iOff = events.get(0).fieldIndex("kafka_offset");
            int iTs = events.get(0).fieldIndex("kafka_timestamp");
            events.sort((a, b) -> {
                int byPartition = Integer.compare(a.getInt(iPart), b.getInt(iPart));
                return byPartition != 0 ? byPartition : Long.compare(a.getLong(iOff), b.getLong(iOff));
            });
            List<Row> alerts = new ArrayList<>();
            Timestamp lastTime = null;
            boolean changed = false;
            for (Row event : events) {
                String eventId = event.getString(iId);
                if (current.seen.containsKey(eventId)) {
                    continue; // a re-sent event: already applied
                }
                Timestamp eventTime = event.getTimestamp(iTime);
                current.seen.put(eventId, micros(eventTime));
                long quantity = event.getInt(iQty);
                current.stock += "restock".equals(event.getString(iType)) ? quantity : -quantity;
                changed = true;
                if (lastTime == null || eventTime.after(lastTime)) {
                    lastTime = eventTime;
                }
                Timestamp at = event.getTimestamp(iTs);
                if (current.stock < threshold && current.openAlertId == null) {
                    current.openAlertId = "low_stock:" + productId + ":" + event.getInt(iPart) + ":" + event.getLong(iOff);
                    current.stockAtOpen = current.stock;
                    current.openedAt = at;
                    alerts.add(RowFactory.create("alert_open", productId, current.stock, threshold,
                            current.stock < threshold, null, current.openAlertId, at, current.stockAtOpen,
                            current.openedAt, null));
                } else if (current.stock >= threshold && current.openAlertId != null) {
                    alerts.add(RowFactory.create("alert_resolve", productId, current.stock, threshold,
                            current.stock < threshold, null, current.openAlertId, at, current.stockAtOpen,
                            current.openedAt, at));
                    current.openAlertId = null;
                    current.openedAt = null;
                }
            }
            if (!current.seen.isEmpty()) {
                // remember ids only as long as a re-send can still arrive (events older than the watermark are
                // dropped by Spark before they reach this function)
                long newest = current.seen.values().stream().mapToLong(Long::longValue).max().getAsLong();
                long oldestKept = newest - horizonMicros;
                current.seen.values().removeIf(moment -> moment < oldestKept);
            }
            state.update(current);
            if (changed) {
                out.add(RowFactory.create("inventory", productId, current.stock, threshold, current.stock < threshold,
                        lastTime, null, null, null, null, null));
                out.addAll(alerts);
            }
            return out.iterator();
        }
    }

    /** One initial-state row (INITIAL_STATE_DDL) as the processor's state. */
    private static final class ToState implements MapFunction<Row, State> {
        private static final long serialVersionUID = 1L;

        @Override
        public State call(Row row) {
            State state = new State();
            state.stock = row.getLong(row.fieldIndex("stock"));
            int iAlert = row.fieldIndex("open_alert_id");
            if (!row.isNullAt(iAlert)) {
                state.openAlertId = row.getString(iAlert);
                state.stockAtOpen = row.getLong(row.fieldIndex("stock_at_open"));
                state.openedAt = row.getTimestamp(row.fieldIndex("opened_at"));
            }
            int iSeen = row.fieldIndex("seen");
            if (!row.isNullAt(iSeen)) {
                Map<String, Long> seen = row.getJavaMap(iSeen);
                state.seen.putAll(seen);
            }
            return state;
        }
    }

    /** Spark DDL of initial-state rows; speed_layer.transforms.INVENTORY_STATE_SCHEMA must say the same. */
    public static final String INITIAL_STATE_DDL = "product_id string, stock bigint, open_alert_id string, "
            + "stock_at_open bigint, opened_at timestamp, seen map<string, bigint>";

    /**
     * Inventory rows and alert transitions from watermarked restock/purchase events (see the class comment).
     *
     * @param events          restock and purchase events, watermarked on event_time
     * @param threshold       stock below this opens an alert (>= 0)
     * @param horizonSeconds  how long applied event ids are remembered (the watermark delay)
     */
    public static Dataset<Row> updates(Dataset<Row> events, int threshold, long horizonSeconds) {
        return grouped(events, threshold).flatMapGroupsWithState(new Apply(threshold, horizonSeconds * 1_000_000L),
                OutputMode.Update(), Encoders.kryo(State.class), Encoders.row(StructType.fromDDL(OUTPUT_DDL)),
                GroupStateTimeout.EventTimeTimeout());
    }

    /**
     * The same, starting from an initial state per product (INITIAL_STATE_DDL: stock, the open alert, the event
     * ids applied within the horizon). Spark uses the initial state only in the first micro-batch of a new
     * checkpoint: `retail rebuild-speed` computes it from bronze, so a restarted query continues from there.
     */
    public static Dataset<Row> updates(Dataset<Row> events, int threshold, long horizonSeconds, Dataset<Row> initial) {
        KeyValueGroupedDataset<String, State> initialState = initial
                .groupByKey(new ProductKey(), Encoders.STRING())
                .mapValues(new ToState(), Encoders.kryo(State.class));
        return grouped(events, threshold).flatMapGroupsWithState(new Apply(threshold, horizonSeconds * 1_000_000L),
                OutputMode.Update(), Encoders.kryo(State.class), Encoders.row(StructType.fromDDL(OUTPUT_DDL)),
                GroupStateTimeout.EventTimeTimeout(), initialState);
    }

    private static KeyValueGroupedDataset<String, Row> grouped(Dataset<Row> events, int threshold) {
        if (threshold < 0) {
            throw new IllegalArgumentException("threshold must be >= 0, got " + threshold);
        }
        return events.groupByKey(new ProductKey(), Encoders.STRING());
    }
}
