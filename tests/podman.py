"""The image built and run by a real container engine: buildah and podman on runc, as root.

Usage::

    engine = Engine(workdir)       # writes the containers.conf every call of the engine uses
    engine.ensure_base_images()    # local stand-ins for the official images the Dockerfile names
    engine.build(IMAGE)            # buildah bud of the checkout; returns the seconds it took
    container = engine.run(IMAGE, "--env=PORT=8000", command=["gunicorn", "--version"])

By hand, as the container tests build it (prints the image's size and the build's time)::

    python -m tests.podman [--no-cache]

No registry is reachable where this project is built and tested, so the official
python:3.11-slim-bookworm is stood in for by a local one with the same layout: Debian bookworm
(debootstrap from apt's own mirror) with Debian's python3.11, tzdata and CA certificates, and a
virtualenv at /usr/local, so /usr/local/bin/python and pip are where the official image has them.
It is made once and kept in podman's store under the official name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.servers import REPO_ROOT

# debootstrap and runc live in /usr/sbin, which a non-root PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ["PATH"], "/usr/sbin", "/sbin"])
PROGRAMS = ("podman", "buildah", "runc", "debootstrap")
# crun, the engine's first choice, fails here ("cgroups in hybrid mode not supported"); cgroupfs
# and a file for events, as no systemd runs; process limits the caller may grant: runc fails
# with "error setting rlimit" when asked for more than the hard limit.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Processes per user in a container: far more than gunicorn's, and within usual hard limits.
MAX_PROCESSES = 32768
# The kernel's default ceiling for open files (fs.nr_open), for an unlimited hard limit.
MAX_OPEN_FILES = 1024 * 1024

SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian/"
# What each stand-in holds on top of Debian's minimal base, by the official name it replaces.
BASE_IMAGES = {
    "docker.io/library/python:3.11-slim-bookworm": (
        "python3.11",
        "python3-venv",
        "ca-certificates",
        "tzdata",
    ),
}
# As in the official images.
BASE_IMAGE_CHANGES = ("ENV LANG=C.UTF-8", 'CMD ["python3"]')
# Debian's pip (the stand-ins' pip) trusts the system's bundle: the host's, mounted over it for
# the build's steps only, is what lets pip through wherever the host needs its own CA.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_IMAGE_TIMEOUT = 900
BUILD_TIMEOUT = 600
COMMAND_TIMEOUT = 120


def missing_programs() -> list[str]:
    """The engine's programs that are not installed."""
    return [name for name in PROGRAMS if shutil.which(name, path=SEARCH_PATH) is None]


def _limit(kind: int, ceiling: int) -> int:
    """This process's hard limit of a kind, at most `ceiling` (which an unlimited one gets)."""
    hard = resource.getrlimit(kind)[1]
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


def debian_mirror() -> str:
    """The Debian mirror apt uses for bookworm's main component (where packages are reachable)."""
    result = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI)", f"Release: {SUITE}"],
        capture_output=True,
        text=True,
        check=False,
    )
    mirrors = result.stdout.split()
    return mirrors[0] if mirrors else FALLBACK_MIRROR


def official_name(image: str) -> str:
    """`python:3.11` as the engine stores it: `docker.io/library/python:3.11`."""
    if "/" not in image:
        image = f"library/{image}"
    if "." not in image.split("/")[0]:
        image = f"docker.io/{image}"
    return image


def base_images(dockerfile: Path) -> list[str]:
    """The images the Dockerfile's FROM lines name (not its own stages), by official name."""
    text = dockerfile.read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE | re.IGNORECASE))
    named = re.findall(r"^FROM (?:--\S+ )*(\S+)", text, re.MULTILINE | re.IGNORECASE)
    return [official_name(image) for image in named if image not in stages]


class Engine:
    """podman and buildah with a containers.conf of their own (the machine's is left alone)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        conf = workdir / "containers.conf"
        nofile = _limit(resource.RLIMIT_NOFILE, MAX_OPEN_FILES)
        nproc = _limit(resource.RLIMIT_NPROC, MAX_PROCESSES)
        conf.write_text(CONTAINERS_CONF.format(nofile=nofile, nproc=nproc))
        self.environ = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *command: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (podman, buildah, ...) with this engine's settings; its output as text.

        A failure raises RuntimeError with the command's output."""
        result = subprocess.run(
            command, env=self.environ, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        return result

    def has_image(self, name: str) -> bool:
        """Whether podman's store holds an image of that name."""
        return self("podman", "image", "exists", name, check=False).returncode == 0

    def ensure_base_images(self, dockerfile: Path = REPO_ROOT / "Dockerfile") -> list[str]:
        """Make the stand-ins the Dockerfile needs that the store lacks; return those made."""
        made = []
        for name in base_images(dockerfile):
            if name not in BASE_IMAGES:
                raise RuntimeError(f"no local stand-in is known for {name}")
            if not self.has_image(name):
                self.make_base_image(name, BASE_IMAGES[name])
                made.append(name)
        return made

    def make_base_image(self, name: str, packages: tuple[str, ...]) -> None:
        """debootstrap a minimal bookworm with the packages, add the venv, import it as `name`."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            root = str(Path(scratch, "rootfs"))
            self(
                shutil.which("debootstrap", path=SEARCH_PATH),
                "--variant=minbase",
                f"--include={','.join(packages)}",
                SUITE,
                root,
                debian_mirror(),
                timeout=BASE_IMAGE_TIMEOUT,
            )
            self("chroot", root, "python3", "-m", "venv", "/usr/local")
            # Not in the official images either: apt's package lists and downloaded packages.
            for cache in ("var/cache/apt", "var/lib/apt/lists"):
                for entry in Path(root, cache).iterdir():
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            changes = [arg for change in BASE_IMAGE_CHANGES for arg in ("--change", change)]
            with subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE) as tar:
                imported = subprocess.run(
                    ["podman", "import", *changes, "-", name],
                    stdin=tar.stdout,
                    env=self.environ,
                    capture_output=True,
                    text=True,
                    timeout=BASE_IMAGE_TIMEOUT,
                    check=False,
                )
            if tar.returncode or imported.returncode:
                raise RuntimeError(f"podman import of {name} failed:\n{imported.stderr}")

    def build(self, tag: str, no_cache: bool = False) -> float:
        """Build the checkout's Dockerfile as `tag` (layers cached, as Docker does); the seconds
        it took."""
        mounts = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
        started = time.monotonic()
        self(
            "buildah",
            "bud",
            "--pull=never",
            "--network=host",
            "--format=docker",
            "--layers",
            *(["--no-cache"] if no_cache else []),
            *mounts,
            "--tag",
            tag,
            str(REPO_ROOT),
            timeout=BUILD_TIMEOUT,
        )
        return time.monotonic() - started

    def image_size(self, name: str) -> int:
        """The image's size in bytes, its base's layers included."""
        return int(self("podman", "image", "inspect", "--format", "{{.Size}}", name).stdout)

    def run(self, image: str, *options: str, command: Sequence[str] = ()) -> Container:
        """`podman run --detach` on the host's network (tests reach it on 127.0.0.1)."""
        # (Without systemd, podman cannot time the image's HEALTHCHECK and says so on stderr;
        # `podman healthcheck run` runs it on demand.)
        started = self(
            "podman",
            "run",
            "--detach",
            "--pull=never",
            "--network=host",
            *options,
            image,
            *command,
        )
        return Container(self, started.stdout.strip())


class Container:
    """A container podman started; remove() it when done (also after it exited)."""

    def __init__(self, engine: Engine, container_id: str) -> None:
        self.engine = engine
        self.id = container_id

    def logs(self) -> str:
        """Everything the container wrote, stdout and stderr."""
        result = self.engine("podman", "logs", self.id)
        return result.stdout + result.stderr

    def wait(self, timeout: float = COMMAND_TIMEOUT) -> int:
        """Wait for the container to exit; its exit code."""
        return int(self.engine("podman", "wait", self.id, timeout=timeout).stdout)

    def remove(self) -> None:
        self.engine("podman", "rm", "--force", "--time=0", self.id, check=False)


def main() -> int:
    """Build the image as the container tests do; print its size and the times taken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", default="localhost/gemini-chunk-proxy:latest")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    options = parser.parse_args()
    engine = Engine(Path(tempfile.gettempdir(), "gemini-proxy-podman"))
    started = time.monotonic()
    made = engine.ensure_base_images()
    base_seconds = time.monotonic() - started
    build_seconds = engine.build(options.tag, no_cache=options.no_cache)
    report = {
        "image": options.tag,
        "image_bytes": engine.image_size(options.tag),
        "build_seconds": round(build_seconds, 1),
        "base_images_made": made,
        "base_images_seconds": round(base_seconds, 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
