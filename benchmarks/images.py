#!/usr/bin/env python3
"""Disk of the agent images of two repositories with different bases.

Two repositories, one on the test base image and one on a base of its own (the test
base plus one small layer, so the two agent images share no parent chain past it), one
`patina yolo` each; then Docker's own accounting (`docker system df -v`): each agent
image's size, the part it shares with other images and the part only it holds, and the
volumes patina keeps Claude Code in. Run it with a patina from before the shared Claude
Code volume and with one after to compare (`--patina`, `PATINA_DATA_DIR`).

    python3 benchmarks/images.py [--patina PATH]

Writes benchmarks/results/images.json.
"""

import argparse
import json

import common
from common import log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    args = parser.parse_args()
    common.check_prerequisites(args)

    second_base = "patina-bench/second-base:1"
    common.docker("build", "-q", "-t", second_base, "-", input=f"FROM {args.base_image}\nRUN echo second > /etc/second-base\n")
    images = {}
    for base in [args.base_image, second_base]:
        ws = common.Workspace(keep=args.keep)
        fake = common.FakeModel(ws.dir, common.SCRIPTS["text"], name="fake")
        try:
            args.base_image, original = base, args.base_image
            log(f"run on {base}")
            _, record = common.run_patina(args, ws, fake, "benchmark: answer at once")
            args.base_image = original
            images[base] = record["image"]
        finally:
            fake.stop()
            ws.close()

    df = json.loads(common.docker("system", "df", "-v", "--format", "{{json .}}").stdout)
    by_ref = {f"{i['Repository']}:{i['Tag']}": i for i in df.get("Images", [])}
    rows, out = [], {"images": {}, "volumes": []}
    for base, ref in images.items():
        info = by_ref.get(ref, {})
        out["images"][base] = {k: info.get(k) for k in ("Size", "SharedSize", "UniqueSize")} | {"image": ref}
        rows.append([base, ref, info.get("Size"), info.get("SharedSize"), info.get("UniqueSize")])
    for volume in df.get("Volumes", []):
        if volume.get("Name", "").startswith("patina-claude-"):
            out["volumes"].append({"name": volume["Name"], "size": volume.get("Size")})
            rows.append(["(volume)", volume["Name"], volume.get("Size"), "", ""])
    print(common.table(["base", "image / volume", "size", "shared", "unique"], rows))
    common.write_results("images", out | {"machine": common.machine_info()}, args.results)


if __name__ == "__main__":
    main()
