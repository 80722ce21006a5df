"""Where a Delta table lives for delta-rs (the JVM-free reader/writer): the same lake URI Spark uses, plus the
object-store options that delta-rs needs for it.

Spark reaches ``s3a://`` through Hadoop's S3A connector and the ``fs.s3a.*`` settings (contracts/spark.py).
Parts of the pipeline read or write Delta without Spark (the speed layer's progress table, the serving layer,
the batch layer's quick reads): for them the same RETAIL_S3_* settings become delta-rs storage options.
Credentials are not options: delta-rs reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, a
web identity token or the instance's role from the environment, as S3A's default chain does.

Example::

    uri, options = delta_rs_location("s3a://shop/lake/speed/progress", settings)
    DeltaTable(uri, storage_options=options)
"""

from __future__ import annotations

from contracts.settings import Settings

__all__ = ["delta_rs_location"]


def delta_rs_location(uri: str, settings: Settings | None) -> tuple[str, dict[str, str] | None]:
    """(uri, storage options) for delta-rs: Hadoop's ``s3a://`` is ``s3://`` there, with the S3 settings.

    Local paths (and any other scheme) are returned unchanged, without options; without settings an ``s3a://``
    URI gets no options (delta-rs then takes everything from the environment).
    """
    if not uri.startswith("s3a://"):
        return uri, None
    options: dict[str, str] = {}
    if settings is None:
        return "s3://" + uri.removeprefix("s3a://"), options
    if settings.s3_endpoint:
        options["AWS_ENDPOINT_URL"] = settings.s3_endpoint
        if settings.s3_endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if settings.s3_region:
        options["AWS_REGION"] = settings.s3_region
    if settings.s3_path_style_access:
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    return "s3://" + uri.removeprefix("s3a://"), options
