package retail.speed;

import java.util.ArrayList;
import java.util.List;

import org.apache.spark.sql.streaming.StreamingQueryListener;

/**
 * Collects the streaming queries' progress in the JVM, for speed_layer.progress.ProgressRecorder to take in bulk.
 *
 * <p>A listener written in Python is called back through py4j for every event of every query, and each call
 * resolves names by searching every jar on the class path: about a sixth of the speed layer's CPU at 1,000
 * events/s (measured with JFR, docs/design.md "Latency"). This listener only appends one JSON line per event;
 * Python drains them every few seconds with one call. Lines: a query's progress JSON as Spark writes it,
 * {"started": id, "name": ...} and {"terminated": id, "exception": ...}.
 */
public final class ProgressBuffer extends StreamingQueryListener {

    private final List<String> lines = new ArrayList<>();

    private static String quote(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }

    private synchronized void add(String line) {
        lines.add(line.replace('\n', ' '));
    }

    @Override
    public void onQueryStarted(QueryStartedEvent event) {
        add("{\"started\": " + quote(event.id().toString()) + ", \"name\": " + quote(event.name()) + "}");
    }

    @Override
    public void onQueryProgress(QueryProgressEvent event) {
        add(event.progress().json());
    }

    @Override
    public void onQueryIdle(QueryIdleEvent event) {
    }

    @Override
    public void onQueryTerminated(QueryTerminatedEvent event) {
        String exception = event.exception().isDefined() ? event.exception().get() : null;
        add("{\"terminated\": " + quote(event.id().toString()) + ", \"exception\": " + quote(exception) + "}");
    }

    /** Every line since the last call, one per line (the progress JSON holds no raw newline), and forget them. */
    public synchronized String drain() {
        String out = String.join("\n", lines);
        lines.clear();
        return out;
    }
}
