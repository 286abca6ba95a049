"""Build and install ms_bce.

`pip install .` (or `pip install -e .`) compiles custom_ops/cpu/*.cc with the
system C++ compiler into ms_bce/_lib/libms_bce_cpu-<hash>.so, a plain shared
library (not a Python extension) that MindSpore's Custom(func_type="aot")
loads by absolute path.  The hash covers sources, headers (the library's own
and custom_ops/common's), flags and compiler, so a rebuild is a new path
(MindSpore keeps running a library already loaded from a path).

Where nvcc is found, it also compiles custom_ops/gpu/*.cu into
ms_bce/_lib/libms_bce_gpu-<hash>.so (see "GPU (CUDA)" below; MS_BCE_BUILD_GPU
forces or disables that).  Both libraries are built by the same steps
(BuildKernels.build_extension), each with its own compiler and flags.
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "ms_bce", "_version.py"), encoding="utf-8") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

# -D_GLIBCXX_USE_CXX11_ABI=0: the InferShape functions return std::vector to
# MindSpore, whose wheel is built with the old libstdc++ ABI.
# No -ffast-math: NaN and inf must keep their IEEE meaning.
# -ffp-contract=off: the arithmetic is what the source writes (GCC otherwise fuses
# a*b - c*d into an FMA where it likes, so the BCELoss rule's float32 operations,
# and the dx-only backward against the fused one, differed in the last bit).
# (tools/sanitize.py reads this list from here: keep it a literal.)
CXXFLAGS = ["-std=c++20", "-O2", "-fPIC", "-fvisibility=hidden", "-fno-math-errno", "-ffp-contract=off",
            "-D_GLIBCXX_USE_CXX11_ABI=0", "-Wall", "-Wextra"]
LDFLAGS = ["-shared"]


def _find_cxx():
    """The C++ compiler to use: $CXX if set, else the first of c++, g++, clang++."""
    requested = os.environ.get("CXX")
    candidates = [requested] if requested else ["c++", "g++", "clang++"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise CompileError(
        "ms_bce needs a C++20 compiler (g++ >= 10 or clang++ >= 14) to build its CPU kernels, "
        f"but {'$CXX=' + repr(requested) + ' was not found' if requested else 'none of c++, g++, clang++ is on the PATH'}. "
        "Install one (for example `apt-get install g++`) or set CXX to its path, then install again.")


# ------------------------------------------------------------- GPU (CUDA) ---
# MS_BCE_BUILD_GPU=1 requires the CUDA kernels (an error without nvcc), =0
# skips them, unset builds them when nvcc is found: $NVCC if set, else nvcc
# on the PATH, else $CUDA_HOME/bin/nvcc or /usr/local/cuda/bin/nvcc.
# Flags: SASS for sm_80 and sm_90 plus PTX for compute_90 (nvcc 13 has no
# compute_70); the static CUDA runtime; no --use_fast_math and --fmad=false,
# so exp/log keep their IEEE accuracy, denormals are kept and products are
# not contracted into FMAs (the maths tested on the host is the maths run);
# -D_GLIBCXX_USE_CXX11_ABI=0 for the InferShape functions' std::vector.
NVCCFLAGS = ["-std=c++17", "-O3", "--fmad=false", "-Xcompiler=-fPIC,-fvisibility=hidden",
             "-D_GLIBCXX_USE_CXX11_ABI=0",
             "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90",
             "-gencode=arch=compute_90,code=compute_90"]
NVCC_LDFLAGS = ["-shared", "-cudart=static"]


def _find_nvcc():
    """nvcc's path, or None."""
    requested = os.environ.get("NVCC")
    if requested:
        return shutil.which(requested)
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        candidate = os.path.join(home, "bin", "nvcc") if home else None
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _gpu_build():
    """(nvcc path or None, the one line to print when the GPU kernels are skipped)."""
    mode = os.environ.get("MS_BCE_BUILD_GPU", "")
    if mode not in ("", "0", "1"):
        sys.exit(f"ms_bce: MS_BCE_BUILD_GPU must be 1 (require the GPU kernels), 0 (skip them) or unset "
                 f"(build them when nvcc is found), but got {mode!r}.")
    if mode == "0":
        return None, "ms_bce: GPU kernels not built (MS_BCE_BUILD_GPU=0); the CPU kernels are."
    nvcc = _find_nvcc()
    if nvcc is None and mode == "1":
        sys.exit("ms_bce: MS_BCE_BUILD_GPU=1 requires the CUDA kernels, but nvcc was not found "
                 f"({'$NVCC=' + repr(os.environ['NVCC']) if os.environ.get('NVCC') else 'not on the PATH, nor in $CUDA_HOME/bin or /usr/local/cuda/bin'}). "
                 "Install the CUDA toolkit (12 or 13) or unset MS_BCE_BUILD_GPU.")
    if nvcc is None:
        return None, ("ms_bce: nvcc not found, GPU kernels skipped (CPU only); install the CUDA toolkit "
                      "or set MS_BCE_BUILD_GPU=1 to require them.")
    return nvcc, None


def _ccbin():
    """nvcc's host compiler: $CXX when set (else nvcc's default)."""
    return ["-ccbin", os.environ["CXX"]] if os.environ.get("CXX") else []


# -------------------------------------------------------------- the build ---

class KernelLibrary(Extension):
    """A shared library of Custom AOT kernels: each of `sources` compiled to an
    object by the compiler `find_compiler()` returns (called once, when the
    library is first named or built) with `compile_flags`, the objects linked
    with `link_flags`.  The file is <base>-<hash>.so, the hash over sources,
    `headers`, flags and the compiler's --version.  `tool` (" with nvcc")
    and `hint` complete a failed compile's message."""

    def __init__(self, name, sources, headers, find_compiler, compile_flags, link_flags, tool="", hint=""):
        super().__init__(name, sources=[])
        self.kernel_sources = sources
        self.kernel_headers = headers
        self.find_compiler = find_compiler
        self.compile_flags = compile_flags
        self.link_flags = link_flags
        self.tool = tool
        self.hint = hint
        self.compiler = None
        self.digest = None

    def prepare(self):
        """Find the compiler and hash the inputs, once."""
        if self.digest is None:
            compiler = self.find_compiler()
            h = hashlib.sha256()
            for path in self.kernel_sources + self.kernel_headers:
                h.update(path.encode())
                with open(path, "rb") as f:
                    h.update(f.read())
            h.update(" ".join(self.compile_flags + self.link_flags).encode())
            h.update(subprocess.run([compiler, "--version"], capture_output=True, check=False).stdout)
            self.compiler, self.digest = compiler, h.hexdigest()[:12]


class BuildKernels(build_ext):
    """build_ext that builds KernelLibrary targets (and any other extension as setuptools does)."""

    def finalize_options(self):
        if GPU_SKIPPED:  # (here: setuptools names the libraries, and so runs prepare(), before run())
            print(GPU_SKIPPED, file=sys.stderr)
        super().finalize_options()

    def get_ext_filename(self, fullname):
        # setuptools passes the dotted name, distutils' get_ext_fullpath only its last part
        ext = next((e for e in self.extensions
                    if fullname in (e.name, e.name.rpartition(".")[2])), None)
        if isinstance(ext, KernelLibrary):
            ext.prepare()
            package, _, base = fullname.rpartition(".")
            return os.path.join(*package.split("."), f"{base}-{ext.digest}.so")
        return super().get_ext_filename(fullname)

    def build_extension(self, ext):
        if not isinstance(ext, KernelLibrary):
            return super().build_extension(ext)
        ext.prepare()
        target = self.get_ext_fullpath(ext.name)
        out_dir = os.path.dirname(target)
        os.makedirs(out_dir, exist_ok=True)
        # drop earlier builds, here and in the source tree (where an editable install copies it)
        prefix = ext.name.rpartition(".")[2] + "-"
        source_dir = os.path.join(HERE, *ext.name.split(".")[:-1])
        for stale in glob.glob(os.path.join(out_dir, prefix + "*.so")) + glob.glob(os.path.join(source_dir, prefix + "*.so")):
            if os.path.basename(stale) != os.path.basename(target):
                os.remove(stale)
        if os.path.exists(target):
            return None
        obj_dir = os.path.join(self.build_temp, ext.name + "-" + ext.digest)
        os.makedirs(obj_dir, exist_ok=True)

        def compile_one(src):
            obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
            cmd = [ext.compiler, *ext.compile_flags, "-c", src, "-o", obj]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise CompileError(f"compiling {src}{ext.tool} failed{ext.hint}:\n"
                                   f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = list(pool.map(compile_one, ext.kernel_sources))
        cmd = [ext.compiler, *ext.link_flags, *objects, "-o", target]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CompileError(f"linking {target} failed:\n{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        print(f"ms_bce: built {target}")
        return None


def _rel(*patterns):
    return sorted(os.path.relpath(p, HERE) for pattern in patterns for p in glob.glob(os.path.join(HERE, pattern)))


# what every library's hash covers besides its own headers: the shared ABI layer
# (custom_ops/common/*.h), the C++ list of losses (*.def) and what expands it (*.inc)
COMMON_HEADERS = ("custom_ops/common/*.h", "custom_ops/common/*.def", "custom_ops/common/*.inc")


def _libraries():
    libraries = [KernelLibrary("ms_bce._lib.libms_bce_cpu", _rel("custom_ops/cpu/*.cc"),
                               _rel("custom_ops/cpu/*.h", *COMMON_HEADERS), _find_cxx, CXXFLAGS, LDFLAGS)]
    if NVCC is not None:
        ccbin = _ccbin()
        libraries.append(KernelLibrary("ms_bce._lib.libms_bce_gpu", _rel("custom_ops/gpu/*.cu"),
                                       _rel("custom_ops/gpu/*.cuh", *COMMON_HEADERS), lambda: NVCC,
                                       ccbin + NVCCFLAGS, ccbin + NVCC_LDFLAGS, tool=" with nvcc",
                                       hint=" (MS_BCE_BUILD_GPU=0 skips the GPU kernels)"))
    return libraries


NVCC, GPU_SKIPPED = _gpu_build()


setup(
    name="ms_bce",
    version=VERSION,
    description="Binary cross entropy losses for MindSpore on our own C++ kernels (Custom AOT ops)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ms_bce", "ms_bce.*"]),
    install_requires=["mindspore==2.10.0", "numpy<2"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        # MathJax from a package (formulas render offline), the theme, copy buttons on examples
        "docs": ["sphinx>=7", "myst-parser>=2", "sphinx-mathjax-offline>=0.0.2,<1", "pydata-sphinx-theme>=0.16,<1",
                 "sphinx-copybutton>=0.5,<1"],
        # the benchmark's plot (python -m ms_bce.bench; PyTorch is compared when installed)
        "bench": ["matplotlib>=3"],
        # everything the README's test command needs (it builds the docs), and `python -m build`
        "dev": ["pytest>=7", "hypothesis>=6", "sphinx>=7", "myst-parser>=2", "sphinx-mathjax-offline>=0.0.2,<1",
                "pydata-sphinx-theme>=0.16,<1", "sphinx-copybutton>=0.5,<1", "build>=1"],
    },
    ext_modules=_libraries(),
    cmdclass={"build_ext": BuildKernels},
    zip_safe=False,
)
