"""All stages in one call, in process: for tests, benchmarks and notebooks (DVC runs them one by one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataops import naming
from dataops.config import Params


@dataclass(frozen=True)
class PipelinePaths:
    """The conventional layout under a project root (the paths `dvc.yaml` uses)."""

    root: Path

    @property
    def sample(self) -> Path:
        return self.root / naming.SAMPLE_DIR

    @property
    def snapshot(self) -> Path:
        return self.root / naming.SNAPSHOT_DIR

    @property
    def preprocessed(self) -> Path:
        return self.root / naming.PREPROCESSED_DIR

    @property
    def tfrecords(self) -> Path:
        return self.root / naming.DATASET_DIR

    @property
    def report(self) -> Path:
        return self.root / naming.REPORT_FILE


def run_pipeline(
    params: Params, root: str | Path, *, sample: bool = True, validate: bool = True
) -> PipelinePaths:
    """Run sample (optional) → ingest → preprocess → serialize → validate (optional) under `root`.

    Temp files go to this process's scratch folder (`dataops.fsutil.process_scratch`), removed
    at the end, or by a later run if this process is killed.
    """
    from dataops.fsutil import process_scratch
    from dataops.stages.ingest import run_ingest
    from dataops.stages.preprocess import run_preprocess
    from dataops.stages.serialize import run_serialize

    paths = PipelinePaths(Path(root))
    with process_scratch():  # temp files in a folder a later run can tell is stale
        if sample:
            from dataops.stages.sample import generate_sample

            generate_sample(paths.sample, params.sample)
        run_ingest(params.ingest, paths.root, paths.snapshot, params.dataset.on_error)
        run_preprocess(
            params.preprocess, paths.snapshot, paths.preprocessed, params.dataset.on_error
        )
        run_serialize(params.serialize, params.dataset, paths.preprocessed, paths.tfrecords)
        if validate:
            from dataops.errors import ValidationFailed
            from dataops.stages.validate import run_validate

            result = run_validate(params.validate_, paths.tfrecords, paths.report)
            if result.violations:
                raise ValidationFailed(result.violations)
    return paths
