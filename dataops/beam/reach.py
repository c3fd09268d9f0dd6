"""Whether an object store answers, asked once before a run touches it: one line in seconds.

Beam's filesystems retry every failed S3 call with exponential backoff (7 retries from 5 s,
each a boto3 call with its own retries and 60 s timeouts), so a wrong endpoint, a store that
never answers or a missing bucket would otherwise cost ten minutes and end in a traceback.
So before a process first reads or writes an `s3://` bucket — the driver at its start, for
the work dir, the `--to-remote` remote and the URLs it names, and any process at the first touch
through `dataops.beam.io` — it asks the store once for the bucket (`head_bucket`), with short
timeouts and at most `ATTEMPTS` tries, through the client Beam builds (the pipeline's
`--s3_endpoint_url`, `--s3_region_name`, `--s3_access_key_id` ..., else boto3's environment and
config files). A bucket that answered is not asked again in the process.

What this does not see: write permission (a bucket readable but not writable fails at the
first write); a store that goes away after the check (Beam's own retries then apply); workers
on other machines with other credentials or network (they check at their first touch too, but
how a worker's failure reaches the driver is the runner's affair). A `gs://` URL is only
checked for a filesystem (Beam's `gcp` extra); its store is not asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dataops.errors import ConfigError, DataopsError, clip

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to the store."""
READ_TIMEOUT = 5.0
"""Seconds for the store to answer the request once connected."""
ATTEMPTS = 2
"""Tries of the request in all (a second one for a blip): at most about 2 × 5 s + backoff."""

_ANSWERED: set[tuple[Any, ...]] = set()
"""(scheme, bucket, S3 options) that answered in this process (for gs://: that Beam reads it)."""


def check(urls: Iterable[Any], args: Sequence[str] | Any, what: str = "") -> None:
    """Raise one line (ConfigError: a wrong endpoint, credentials or bucket, or a store that
    does not answer; DataopsError for a store that answers with a failure of its own) unless
    the store of every object-store URL among `urls` answers, asked with the pipeline
    options `args` (argv, or a `PipelineOptions`). `what` prefixes the message (the option
    that named the URL)."""
    for url in dict.fromkeys(str(u) for u in urls if "://" in str(u)):
        scheme, _, rest = url.partition("://")
        bucket = rest.partition("/")[0]
        options = _s3_options(args) if scheme == "s3" else {}
        key = (scheme, bucket, tuple(sorted(options.items())))
        if key in _ANSWERED:
            continue
        _filesystem(url, scheme, what)
        if scheme == "s3":  # gs:// and others: no probe (see the module docstring)
            if not bucket:
                raise ConfigError(f"{what}{url}: no bucket in the URL (s3://BUCKET/PREFIX)")
            _probe_s3(url, bucket, options, what)
        _ANSWERED.add(key)


def _filesystem(url: str, scheme: str, what: str) -> None:
    """ConfigError when Beam has no filesystem for the URL's scheme (its extra not installed)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        FileSystems.get_filesystem(url)
    except Exception:  # noqa: BLE001 — ValueError or BeamIOError, whose text names the extra
        extra = {"gs": " (pip install 'apache-beam[gcp]')", "hdfs": " (the hadoop extra)"}
        raise ConfigError(
            f"{what}{url}: Beam has no filesystem for {scheme}:// here{extra.get(scheme, '')}"
        ) from None


def _s3_options(args: Sequence[str] | Any) -> dict[str, Any]:
    """The S3 settings of the pipeline options, as Beam's S3 client reads them."""
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options

    if not isinstance(args, PipelineOptions):
        args = PipelineOptions(list(args))
    o = args.view_as(S3Options)
    return {
        "region_name": o.s3_region_name,
        "api_version": o.s3_api_version,
        "use_ssl": not o.s3_disable_ssl,
        "verify": o.s3_verify,
        "endpoint_url": o.s3_endpoint_url,
        "aws_access_key_id": o.s3_access_key_id,
        "aws_secret_access_key": o.s3_secret_access_key,
        "aws_session_token": o.s3_session_token,
    }


def _probe_s3(url: str, bucket: str, options: dict[str, Any], what: str) -> None:
    try:
        import boto3
        from botocore import exceptions as bx
        from botocore.config import Config
    except ImportError:
        raise ConfigError(f"{what}{url}: s3:// needs boto3 (pip install 'dataops[s3]')") from None
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
    )
    try:
        client = boto3.session.Session().client("s3", config=config, **options)
    except (ValueError, bx.BotoCoreError) as err:  # e.g. "Invalid endpoint: ..."
        raise ConfigError(f"{what}{url}: --s3_endpoint_url: {_first_line(err)}") from None
    endpoint = client.meta.endpoint_url
    at = f"the S3 endpoint {endpoint}"
    try:
        client.head_bucket(Bucket=bucket)
    except bx.EndpointConnectionError as err:  # refused, no route, name not resolved
        raise ConfigError(f"{what}{url}: cannot connect to {at} ({_reason(err)})") from None
    except bx.ConnectTimeoutError:
        raise ConfigError(
            f"{what}{url}: {at} did not accept a connection within {CONNECT_TIMEOUT:g} s "
            f"({ATTEMPTS} tries)"
        ) from None
    except bx.ReadTimeoutError:
        raise ConfigError(
            f"{what}{url}: {at} accepted the connection but did not answer within "
            f"{READ_TIMEOUT:g} s ({ATTEMPTS} tries); is it an S3 endpoint?"
        ) from None
    except bx.SSLError as err:
        raise ConfigError(
            f"{what}{url}: TLS failed with {at} ({_first_line(err)}); see --s3_verify / --s3_disable_ssl"
        ) from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise ConfigError(
            f"{what}{url}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE), or --s3_access_key_id and --s3_secret_access_key"
        ) from None
    except bx.ClientError as err:
        raise _answered(err, url, bucket, at, what) from None
    except bx.BotoCoreError as err:
        raise ConfigError(f"{what}{url}: {at}: {_first_line(err)}") from None


def _answered(err: Any, url: str, bucket: str, at: str, what: str) -> DataopsError:
    """The store answered `head_bucket` with an error status: the line that says which."""
    response = err.response
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code") or str(status)
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    if status in (403, 404) and not any(str(h).lower().startswith("x-amz") for h in headers):
        return ConfigError(  # S3 servers (AWS, MinIO, Ceph, moto) send x-amz-* request ids
            f"{what}{url}: {at} answered {status} without any x-amz-* header; is it an S3 endpoint?"
        )
    if status == 404 or code == "NoSuchBucket":
        return ConfigError(f"{what}{url}: bucket '{bucket}' does not exist at {at}")
    if status == 403:
        return ConfigError(
            f"{what}{url}: {at} refuses access to bucket '{bucket}' (403: the credentials are "
            "wrong or may not use it)"
        )
    if status in (301, 307) or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        region = headers.get("x-amz-bucket-region")
        hint = f": set --s3_region_name={region}" if region else " (check --s3_region_name)"
        return ConfigError(f"{what}{url}: bucket '{bucket}' is in another region{hint}")
    if status is not None and int(status) >= 500:
        return DataopsError(f"{what}{url}: {at} answered {status} {code}; try again later")
    return ConfigError(f"{what}{url}: {at} answered {status} {code} for bucket '{bucket}'")


def _first_line(err: BaseException) -> str:
    return clip((str(err).splitlines() or [type(err).__name__])[0], 200)


def _reason(err: Any) -> str:
    """Why a connection failed, from the socket error botocore wraps ('connection refused')."""
    cause: BaseException | None = err.kwargs.get("error") if hasattr(err, "kwargs") else None
    while cause is not None:
        for arg in getattr(cause, "args", ()):
            if isinstance(arg, OSError) and arg.strerror:
                return arg.strerror.lower()
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        text = str(cause)
        for known in ("Connection refused", "Name or service not known", "No route to host"):
            if known in text:
                return known.lower()
        cause = cause.__cause__ or cause.__context__
    return "no answer"
