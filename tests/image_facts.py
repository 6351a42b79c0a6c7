"""What an image holds, printed as one JSON object; run inside the image, as root.

Usage: podman run --rm --user=0 -v ./tests/image_facts.py:/facts.py:ro IMAGE python /facts.py SIZE

Standard library only (the image has no test tools). SIZE is a file size in bytes: the SHA-256
of every regular file of exactly that size is listed, so a caller can look for one file (the build
host's CA bundle) anywhere in the image without hashing all of it.
"""

import hashlib
import importlib.metadata
import json
import os
import stat
import sys

SERVER_ROOT = "/srv"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Kernel views, not the image's files.
SKIPPED = ("/proc", "/sys", "/dev")


def sha256(path: str) -> str:
    """The file's SHA-256, in hex."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def main() -> None:
    """Print the facts: installed distributions, .git paths, hashes, /srv's modes and owners."""
    size = int(sys.argv[1])
    gits, hashes = [], []
    for top, dirs, files in os.walk("/"):
        if top in SKIPPED:
            dirs[:] = []
            continue
        gits += [os.path.join(top, name) for name in dirs + files if name == ".git"]
        for name in files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_size == size:
                hashes.append(sha256(path))
    server = {}
    for top, dirs, files in os.walk(SERVER_ROOT):
        for name in dirs + files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            server[os.path.relpath(path, SERVER_ROOT)] = {
                "mode": stat.S_IMODE(info.st_mode),
                "uid": info.st_uid,
                "folder": stat.S_ISDIR(info.st_mode),
            }
    facts = {
        "distributions": [d.metadata["Name"] for d in importlib.metadata.distributions()],
        "gits": gits,
        "hashes_of_that_size": hashes,
        "ca_bundle_sha256": sha256(CA_BUNDLE),
        "server": server,
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
