"""Demo (not a stage): a dataset written straight into a DVC remote's content-addressed layout.

What a Beam job does at scale instead of writing into a DVC workspace: each worker uploads its
shard (and index) to `<remote>/files/md5/<2>/<30>`; the driver uploads the `.dir` manifest
(the JSON list of {md5, relpath}, sorted, whose md5 + ".dir" names the directory) and records
it as the stage's out in `dvc.lock`. Then, in a clone with no data, `dvc repro --allow-missing`
skips the stage and `dvc pull` fetches the exact bytes. This script plays the workers' part from
an existing dataset directory, against a local S3-compatible server (moto), and checks both.

Usage: python scripts/dvc_remote_layout_demo.py DATASET_DIR WORK_DIR
Needs: apache-beam, boto3, moto[server], dvc, dvc-s3.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def main(dataset: Path, work: Path) -> None:
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    srv = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
        )
        FileSystems.set_options(
            PipelineOptions(
                [
                    f"--s3_endpoint_url={endpoint}",
                    "--s3_access_key_id=test",
                    "--s3_secret_access_key=test",
                    "--s3_region_name=us-east-1",
                ]
            )
        )
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="dvc")

        def put(data: bytes, md5: str) -> None:  # one upload, as a worker does after its shard
            with FileSystems.create(
                f"s3://dvc/files/md5/{md5[:2]}/{md5[2:]}", compression_type="uncompressed"
            ) as f:
                f.write(data)

        entries, size = [], 0
        for f in sorted(p for p in dataset.rglob("*") if p.is_file()):
            data = f.read_bytes()
            md5 = hashlib.md5(data).hexdigest()
            put(data, md5)
            entries.append({"md5": md5, "relpath": f.relative_to(dataset).as_posix()})
            size += len(data)
        manifest = json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True).encode()
        dir_md5 = hashlib.md5(manifest).hexdigest() + ".dir"
        put(manifest, dir_md5)  # the driver, from the per-shard results

        repo = work / "clone"
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)

        def sh(*args: str) -> str:
            return subprocess.run(args, cwd=repo, check=True, capture_output=True, text=True).stdout

        sh("git", "init", "-q")
        sh("dvc", "init", "-q")
        sh("dvc", "remote", "add", "-d", "store", "s3://dvc")
        sh("dvc", "remote", "modify", "store", "endpointurl", endpoint)
        (repo / "build.py").write_text("print('the Beam job')\n")
        (repo / "dvc.yaml").write_text(
            "stages:\n  serialize:\n    cmd: python build.py\n    deps:\n    - build.py\n"
            "    outs:\n    - tfrecords\n"
        )
        dep = repo / "build.py"
        (repo / "dvc.lock").write_text(
            "schema: '2.0'\nstages:\n  serialize:\n    cmd: python build.py\n    deps:\n"
            f"    - path: build.py\n      hash: md5\n      md5: {hashlib.md5(dep.read_bytes()).hexdigest()}\n"
            f"      size: {dep.stat().st_size}\n    outs:\n    - path: tfrecords\n      hash: md5\n"
            f"      md5: {dir_md5}\n      size: {size}\n      nfiles: {len(entries)}\n"
        )
        print(sh("dvc", "repro", "--allow-missing"), end="")
        print(sh("dvc", "pull"), end="")
        print(sh("dvc", "status"), end="")
        same = all(
            (repo / "tfrecords" / e["relpath"]).read_bytes()
            == (dataset / e["relpath"]).read_bytes()
            for e in entries
        )
        print(f"pulled {len(entries)} files, bytes identical: {same}")
        if not same:
            raise SystemExit(1)
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
