"""Builds the CPU kernels with AddressSanitizer and UndefinedBehaviorSanitizer
and drives every exported function directly, outside MindSpore:

- every kernel entry point (enumerated with ``nm`` and checked against
  ms_bce._kernels' naming), through ctypes in a separate Python process that
  loads only numpy, with the sanitizer runtimes preloaded: valid calls (every
  dtype, broadcast class, reduction, zero-size and above-chunk sizes, both SIMD
  paths, 1 and 2 threads) against the float64 reference and bit-identical to
  the installed library; malformed calls (wrong ``nparam``, NULL argument
  arrays and data pointers, unknown or mixed dtype strings, mismatched,
  negative and overflowing shapes, rank > 16) returning their Status code and
  leaving the outputs untouched; the settings functions;
- every InferShape function from a small C++ driver (tools/sanitize_infer.cc:
  they return std::vector and throw std::invalid_argument), with LeakSanitizer
  on, which also calls each kernel once more.

    python tools/sanitize.py        # exit status 0 and "sanitizers: clean" when clean

The build (under build/sanitize/, keyed by a hash of the compiler, the flags,
the sources and every header and list of custom_ops/cpu/ and
custom_ops/common/; its translation units compiled in parallel) uses setup.py's
flags with -O1 -g1 in place of its -O2, plus -fsanitize=address,undefined
-fno-sanitize-recover=all -fno-omit-frame-pointer and outlined ASan checks
(see OPT_FLAGS, OUTLINE_ASAN): about 70 s on 2 cores, the drive about 60 s.
Needs g++ (or $CXX) and its sanitizer runtimes (Debian: libasan8, libubsan1,
installed with g++).
"""
import argparse
import ast
import ctypes
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_DIR = os.path.join(ROOT, "custom_ops", "cpu")
# the ABI layer the CPU and GPU libraries share (headers and X-macro lists)
COMMON_DIR = os.path.join(ROOT, "custom_ops", "common")
SOURCES = sorted(glob.glob(os.path.join(CPU_DIR, "*.cc")))
# what the build's hash covers besides SOURCES: every header and list either library directory holds
HEADERS = sorted(p for d in (CPU_DIR, COMMON_DIR) for ext in ("h", "def", "inc")
                 for p in glob.glob(os.path.join(d, "*." + ext)))
INCLUDE_FLAGS = ["-I" + CPU_DIR, "-I" + COMMON_DIR, "-I" + os.path.dirname(COMMON_DIR)]
INFER_DRIVER = os.path.join(ROOT, "tools", "sanitize_infer.cc")
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# The sanitizer build's optimisation and debug levels, in place of setup.py's -O2: -O1 is what
# AddressSanitizer's documentation recommends (-O2 detects nothing more, and can optimise a bad
# access away), and UndefinedBehaviorSanitizer's checks are inserted before any optimisation;
# -g1 (line tables) is all a sanitizer report's stack trace needs.  Together about half the
# CPU time of -O2 -g.
OPT_FLAGS = ["-O1", "-g1"]
# Each ASan check a call into the runtime (__asan_load4 ...) instead of inline shadow arithmetic:
# the same checks and reports, a third of the compile time, the calls slower (the driver's run
# is about as long).
OUTLINE_ASAN = {"gcc": ["--param=asan-instrumentation-with-call-threshold=0"],
                "clang": ["-mllvm", "-asan-instrumentation-with-call-threshold=0"]}
# project flags that only slow a sanitizer build down (warnings are setup.py's business), or that
# OPT_FLAGS replace
DROP_FLAGS = {"-Wall", "-Wextra"}


def project_cxxflags():
    """setup.py's CXXFLAGS (read, not imported: importing it runs setup())."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CXXFLAGS" for t in node.targets):
            return [f for f in ast.literal_eval(node.value)
                    if f not in DROP_FLAGS and not re.fullmatch(r"-O\w*|-g\w*", f)]
    raise RuntimeError("setup.py defines no CXXFLAGS")


def find_cxx():
    for name in ([os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]):
        if shutil.which(name):
            return shutil.which(name)
    return None


def runtime(cxx, name):
    """Absolute path of a sanitizer runtime (libasan.so, libubsan.so) of cxx, or None."""
    out = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return os.path.realpath(out) if os.path.isabs(out) and os.path.exists(out) else None


def unavailable_reason():
    """Why the sanitizers cannot run here (None when they can)."""
    cxx = find_cxx()
    if cxx is None:
        return "no C++ compiler (g++, c++, clang++ or $CXX) on the PATH"
    for lib in ("libasan.so", "libubsan.so"):
        if runtime(cxx, lib) is None:
            return f"{os.path.basename(cxx)} has no {lib} (Debian: apt-get install libasan8 libubsan1)"
    return None


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def compiler_version(cxx):
    return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout


def build_flags(cxx):
    """The flags of the library's translation units and of the InferShape driver."""
    family = "clang" if "clang" in compiler_version(cxx).lower() else "gcc"
    return project_cxxflags() + OPT_FLAGS + INCLUDE_FLAGS + SANITIZE_FLAGS + OUTLINE_ASAN[family]


def build(cxx, out_root):
    """The sanitized kernel library and InferShape driver, built once per content
    hash (of the compiler, the flags and every source and header), under a lock:
    a second run of the same hash (say, by hand while the test command's runs
    in the background) waits for the first build and reuses it.  The
    translation units and the driver compile in parallel, the largest first."""
    flags = build_flags(cxx)
    h = hashlib.sha256(" ".join([cxx] + flags).encode())
    h.update(compiler_version(cxx).encode())
    for path in SOURCES + HEADERS + [INFER_DRIVER]:
        h.update(os.path.relpath(path, ROOT).encode() + b"\0" + open(path, "rb").read())
    out = os.path.join(out_root, h.hexdigest()[:12])
    lib, driver = os.path.join(out, "libms_bce_cpu_sanitized.so"), os.path.join(out, "sanitize_infer")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(lib) and os.path.exists(driver):
            return lib, driver, False

        def compile_one(src):
            if src == INFER_DRIVER:
                run([cxx, *[f for f in flags if f != "-fPIC"], INFER_DRIVER, "-o", driver + ".tmp", "-ldl"])
                return None
            obj = os.path.join(out, os.path.basename(src) + ".o")
            run([cxx, *flags, "-c", src, "-o", obj])
            return obj
        jobs = sorted(SOURCES + [INFER_DRIVER], key=os.path.getsize, reverse=True)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = [o for o in pool.map(compile_one, jobs) if o is not None]
        run([cxx, "-shared", "-fsanitize=address,undefined", *objects, "-o", lib + ".tmp"])
        os.replace(driver + ".tmp", driver)
        os.replace(lib + ".tmp", lib)
    return lib, driver, True


def exported_functions(lib):
    """The functions the library exports (nm -D), toolchain symbols (_init, __asan_...) aside."""
    out = run(["nm", "-D", "--defined-only", lib]).stdout
    names = (m.group(1) for m in re.finditer(r"^[0-9a-fA-F]+ [TW] (\S+)$", out, re.M))
    return sorted(n for n in names if not n.startswith("_"))


def expected_kernels():
    """Every kernel entry point the Python layer can name (ms_bce._kernels.entry_point)."""
    from ms_bce import _kernels
    names = []
    for loss in _kernels.LOSSES:
        for direction in _kernels.DIRECTIONS:
            for reduction in ("none", "mean", "sum"):
                for w, p, m in ((w, p, m) for m in (False, True) for w in (False, True) for p in (False, True)):
                    try:
                        point = _kernels.entry_point(loss, direction, reduction, w, p, has_mask=m)
                    except ValueError:  # no such kernel (bce with pos_weight, a weight gradient without one)
                        continue
                    names.append(point.rpartition(":")[2])
    return names, _kernels.library_path()


def sanitizer_env(cxx, preload):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ("abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:"
                           "check_initialization_order=1:strict_init_order=1:detect_leaks="
                           + ("0" if preload else "1"))
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if preload:
        env["LD_PRELOAD"] = ":".join([runtime(cxx, "libasan.so"), runtime(cxx, "libubsan.so")])
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "sanitize"), help="build directory")
    parser.add_argument("--drive", nargs=3, metavar=("LIB", "PLAIN_LIB", "NAMES_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        from tools import sanitize_driver
        return sanitize_driver.main(*args.drive)
    reason = unavailable_reason()
    if reason:
        print(f"sanitizers unavailable: {reason}")
        return 77
    cxx = find_cxx()
    t0 = time.time()
    lib, driver, built = build(cxx, args.out)
    print(f"{'built' if built else 'reusing'} {lib} ({time.time() - t0:.0f} s) with {os.path.basename(cxx)} "
          f"{' '.join(build_flags(cxx))}")
    kernels, plain_lib = expected_kernels()
    exported = exported_functions(lib)
    infer = [k + "InferShape" for k in kernels]
    settings = ["ms_bce_set_num_threads", "ms_bce_get_num_threads", "ms_bce_set_simd_path", "ms_bce_get_simd_path",
                "ms_bce_vector_math", "ms_bce_last_error"]
    # the benchmark's floor operators (custom_ops/cpu/floor.cc)
    floors = ["ms_bce_floor_read", "ms_bce_floor_read_write"]
    floor_infer = [f + "InferShape" for f in floors]
    driven = set(kernels) | set(infer) | set(settings) | set(floors) | set(floor_infer)
    unknown = sorted(set(exported) - driven)
    missing = sorted(driven - set(exported))
    if unknown or missing:
        print(f"exported functions differ from ms_bce._kernels' naming: not driven {unknown}, missing {missing}")
        return 1
    names_json = os.path.join(os.path.dirname(lib), "names.json")
    with open(names_json, "w", encoding="utf-8") as f:
        from ms_bce import _losses
        # "<loss>:<count>" of every loss: the length of its t operand (its parameters, then the
        # drivers' options: _losses.scalars), whose shape its InferShape checks
        parameters = [f"{name}:{len(_losses.scalars(name))}" for name in _losses.LOSSES]
        json.dump({"kernels": kernels, "infer": infer, "settings": settings, "floors": floors,
                   "floor_infer": floor_infer, "parameters": parameters}, f)
    ok = True
    t0 = time.time()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--drive", lib, plain_lib, names_json],
                          env=sanitizer_env(cxx, preload=True), capture_output=True, text=True, cwd=ROOT)
    print(proc.stdout.strip())
    if proc.returncode != 0:
        print(f"ctypes driver FAILED (exit status {proc.returncode}):\n{proc.stderr[-20000:]}")
        ok = False
    else:
        print(f"ctypes driver: clean ({time.time() - t0:.0f} s)")
    t0 = time.time()
    proc = subprocess.run([driver, lib, names_json], env=sanitizer_env(cxx, preload=False), capture_output=True,
                          text=True, cwd=ROOT)
    print(proc.stdout.strip())
    if proc.returncode != 0:
        print(f"InferShape driver FAILED (exit status {proc.returncode}):\n{proc.stderr[-20000:]}")
        ok = False
    else:
        print(f"InferShape driver (LeakSanitizer on): clean ({time.time() - t0:.0f} s)")
    print("sanitizers: clean" if ok else "sanitizers: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
