"""Generate the gRPC modules of `schemas/proto/collector.proto` into `uxstream/collector/proto/`.

The generated modules are checked in (no generation step at setup); a check-tier test regenerates them
into a temporary folder and compares the bytes. After editing the .proto:
`python -m uxstream.collector.protogen`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from uxstream.paths import ROOT

PROTO_DIR: Final = ROOT / "schemas" / "proto"
PROTO: Final = "collector.proto"
OUT_DIR: Final = ROOT / "uxstream" / "collector" / "proto"
GENERATED: Final = ("collector_pb2.py", "collector_pb2.pyi", "collector_pb2_grpc.py")


def generate(out_dir: Path = OUT_DIR) -> None:
    from grpc_tools import protoc  # dev dependency (grpcio-tools)

    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main([
        "protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}", str(PROTO_DIR / PROTO),
    ])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO_DIR / PROTO} (exit {code})")
    grpc_module = out_dir / "collector_pb2_grpc.py"
    text = grpc_module.read_text(encoding="utf-8")
    grpc_module.write_text(
        text.replace("import collector_pb2 as", "from uxstream.collector.proto import collector_pb2 as"),
        encoding="utf-8",
    )


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
