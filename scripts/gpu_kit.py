#!/usr/bin/env python3
"""The GPU kit: build, test and benchmark libdl on a bare GPU machine in one short run.

  gpu_kit.py pack DIR                      (where apt works) gather what such a machine lacks into DIR
  gpu_kit.py run DIR OUT [--budget S]      (on the GPU machine) build, test, benchmark; OUT/report.md
             [--no-gpu] [--jobs N]         and OUT/results.json

`pack` copies the headers and libraries of the Debian packages the build needs (Eigen, zlib, libspng,
libjpeg-turbo, GoogleTest, Google Benchmark) out of their installed files, unpacked, into DIR/deps,
the project's tracked sources into DIR/src, and the MNIST files of data/mnist (fetched first when
missing) into DIR/data/mnist.

`run` finds CUDA (nvcc) and cuDNN (in the toolkit, the system, or the `nvidia/cudnn` folder of a PyTorch
installation), builds libdl for the GPU's own compute capability only, against DIR/deps alone (the
system's copies hidden from CMake), then runs its stages in order, each under its own time limit and
all under the global budget: the GPU and kernel tests, libdl's MNIST and DeepLabv3+ training steps in
each precision libdl offers, the same steps in PyTorch (scripts/gpu_kit_torch.py), the hand-written
kernels' bandwidth against the device's copy bandwidth, train_mnist with the seed's recipe and the
sweep's batch-size comparison. The report is rewritten after every stage, so a stage that fails, a
budget that runs out or a SIGTERM still leaves OUT/report.md and OUT/results.json, saying what was
not reached. With --no-gpu the same run builds without CUDA and runs the CPU half (the emulated kernel
tests, the CPU MNIST step in libdl and in PyTorch, a short training run), so a broken kit shows before a
GPU is lent.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

# The Debian packages whose files the build needs and a bare GPU machine lacks: the -dev packages for
# headers, CMake configs and static archives, the runtime packages for the shared libraries they link.
KIT_PACKAGES = [
    "libeigen3-dev",
    "zlib1g-dev", "zlib1g",
    "libspng-dev", "libspng0",
    "libjpeg62-turbo-dev", "libjpeg62-turbo",
    "libgtest-dev", "libgmock-dev",
    "libbenchmark-dev", "libbenchmark1debian",
]
KIT_LIMIT_BYTES = 64 << 20
# What a kit folder does not need of a package: documentation and manual pages.
SKIP_PREFIXES = ("/usr/share/doc", "/usr/share/man", "/usr/share/lintian", "/usr/share/bug")
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def mnist_file(folder, name):
    """The path of one MNIST file in folder, .gz or plain (the forms load_mnist reads), or None."""
    return next((p for p in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)) if os.path.isfile(p)), None)


def fail(message):
    print(f"gpu_kit: error: {message}", file=sys.stderr)
    sys.exit(1)


def project_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_atomically(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def folder_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


# ---------------------------------------------------------------------------------------------- pack

def package_files(package):
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listing.returncode != 0:
        fail(f"pack: the Debian package {package} is not installed (expected it installed by scripts/setup.sh; "
             f"dpkg said: {listing.stderr.strip()})")
    return [p for p in listing.stdout.splitlines() if p.startswith("/") and not p.startswith(SKIP_PREFIXES)]


def pack(args):
    kit = os.path.abspath(args.dir)
    if os.path.exists(kit) and os.listdir(kit):
        fail(f"pack: {kit} exists and is not empty (expected a new or empty folder)")
    tmp = kit.rstrip("/") + ".packing"
    shutil.rmtree(tmp, ignore_errors=True)
    deps = os.path.join(tmp, "deps")
    for package in KIT_PACKAGES:
        for path in package_files(package):
            if not os.path.isfile(path):  # folders, and links to nothing
                continue
            # usrmerge: /lib is /usr/lib; links are copied as the files they point to, so that the kit
            # holds no absolute link into this machine.
            rel = path[1:]
            if rel.startswith("lib/"):
                rel = "usr/" + rel
            dest = os.path.join(deps, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(path, dest, follow_symlinks=True)
    root = project_root()
    tracked = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        source = os.path.join(root, rel)
        inside_kit = any(os.path.commonpath([os.path.abspath(source), k]) == k for k in (kit, tmp))
        if os.path.isfile(source) and not inside_kit:  # a kit packed inside the checkout is not its own source
            dest = os.path.join(tmp, "src", rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(source, dest)
    mnist = os.path.join(root, "data", "mnist")
    if not all(mnist_file(mnist, f) for f in MNIST_FILES):
        print(f"gpu_kit: pack: fetching MNIST into {mnist}", flush=True)
        subprocess.run([os.path.join(root, "scripts", "fetch_mnist.sh"), mnist], check=True)
    os.makedirs(os.path.join(tmp, "data", "mnist"))
    for f in MNIST_FILES:
        path = mnist_file(mnist, f)
        if not path:
            fail(f"pack: {mnist} lacks {f} (.gz or plain) after scripts/fetch_mnist.sh")
        shutil.copy2(path, os.path.join(tmp, "data", "mnist", os.path.basename(path)))
    size = folder_bytes(tmp)
    if size > KIT_LIMIT_BYTES:
        shutil.rmtree(tmp)
        fail(f"pack: the kit would take {size / 1048576:.1f} MiB, over its limit of {KIT_LIMIT_BYTES >> 20} MiB")
    manifest = {"packages": {}, "bytes": size, "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for package in KIT_PACKAGES:
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        manifest["packages"][package] = version.stdout.strip()
    write_atomically(os.path.join(tmp, "kit.json"), json.dumps(manifest, indent=2) + "\n")
    if os.path.exists(kit):
        os.rmdir(kit)
    os.replace(tmp, kit)
    print(f"gpu_kit: packed {kit} ({size / 1048576:.1f} MiB). On the GPU machine: "
          f"{os.path.basename(kit)}/src/scripts/gpu_kit.sh run {os.path.basename(kit)} OUT")
    return 0


# ----------------------------------------------------------------------------------------------- run

class Budget(Exception):
    """The global budget ran out (or a SIGTERM came) during a stage."""


class Run:
    def __init__(self, args):
        self.kit = os.path.abspath(args.dir)
        self.out = os.path.abspath(args.out)
        self.budget = args.budget
        self.no_gpu = args.no_gpu
        self.jobs = args.jobs or os.cpu_count() or 2
        self.start = time.monotonic()
        self.build = os.path.join(self.out, "build")
        self.bin = os.path.join(self.build, "bin")
        self.results = {"kit": self.kit, "mode": "cpu (--no-gpu)" if self.no_gpu else "gpu", "budget_s": self.budget,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": {},
                        "stages": [], "figures": {}}
        self.child = None
        self.terminated = False
        self.torch_python = None

    # -- bookkeeping

    def left(self):
        return self.budget - (time.monotonic() - self.start)

    def log_path(self, name):
        return os.path.join(self.out, "logs", f"{name}.log")

    def stage(self, name, limit, fn):
        """Runs fn under min(limit, what the budget has left); records its status either way."""
        record = {"name": name, "limit_s": limit}
        self.results["stages"].append(record)
        if self.terminated:
            record.update(status="not reached", detail="the run was terminated")
        elif self.left() < 5:
            record.update(status="not reached", detail=f"the budget of {self.budget:.0f} s ran out")
        else:
            t0 = time.monotonic()
            try:
                detail = fn(min(limit, self.left()))
                record.update(status="ok", detail=detail or "")
            except Budget as e:
                record.update(status="stopped", detail=str(e))
            except Exception as e:  # noqa: BLE001 - a stage's failure is a line of the report
                record.update(status="failed", detail=str(e))
            record["seconds"] = round(time.monotonic() - t0, 1)
            print(f"gpu_kit: {name}: {record['status']} ({record['seconds']} s) {record['detail']}", flush=True)
        self.write_report()
        return record["status"] == "ok"

    def sh(self, name, cmd, limit, env=None, cwd=None):
        """Runs cmd with its output in logs/NAME.log; returns the output; raises on failure or timeout."""
        os.makedirs(os.path.dirname(self.log_path(name)), exist_ok=True)
        full_env = dict(os.environ, **(env or {}))
        with open(self.log_path(name), "w") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            self.child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                                          start_new_session=True)
            try:
                rc = self.child.wait(timeout=max(1, limit))
            except subprocess.TimeoutExpired:
                self.kill_child()
                raise Budget(f"stopped at its limit of {limit:.0f} s (log: logs/{name}.log)")
            finally:
                self.child = None
        with open(self.log_path(name), errors="replace") as log:
            output = log.read()
        if self.terminated:
            raise Budget("the run was terminated")
        if rc != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise RuntimeError(f"exit status {rc} (log: logs/{name}.log): {tail[-400:]}")
        return output

    def kill_child(self):
        if self.child and self.child.poll() is None:
            try:
                os.killpg(self.child.pid, signal.SIGTERM)
                self.child.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
                self.child.wait()

    def on_sigterm(self, signum, frame):
        self.terminated = True
        self.kill_child()

    # -- the machine

    def query(self, cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return p.stdout.strip() if p.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def find_cuda(self):
        nvcc = shutil.which("nvcc") or next(iter(sorted(glob.glob("/usr/local/cuda*/bin/nvcc"))), None)
        if not nvcc:
            raise RuntimeError("no CUDA toolkit: expected nvcc on PATH or under /usr/local/cuda*/bin")
        return os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), nvcc

    def find_cudnn(self, cuda_root):
        """(include dir, library dir) of cuDNN: the toolkit's folder, the system's, or PyTorch's wheel."""
        places = [(os.path.join(cuda_root, "include"), os.path.join(cuda_root, "lib64")),
                  ("/usr/include", "/usr/lib/x86_64-linux-gnu"),
                  ("/usr/include/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")]
        wheel = self.query([self.torch_python or sys.executable, "-c",
                            "import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])"])
        if wheel:
            places.append((os.path.join(wheel, "include"), os.path.join(wheel, "lib")))
        for inc, lib in places:
            libs = sorted(glob.glob(os.path.join(lib, "libcudnn.so*")))
            if os.path.isfile(os.path.join(inc, "cudnn.h")) and libs:
                if not os.path.exists(os.path.join(lib, "libcudnn.so")):
                    # A wheel ships libcudnn.so.9 only: give the linker its unversioned name in a folder of ours.
                    own = os.path.join(self.out, "cudnn-lib")
                    os.makedirs(own, exist_ok=True)
                    link = os.path.join(own, "libcudnn.so")
                    if not os.path.lexists(link):
                        os.symlink(libs[-1], link)
                    return inc, own, lib
                return inc, lib, lib
        raise RuntimeError("no cuDNN: looked for cudnn.h and libcudnn.so* in " +
                           ", ".join(f"{i} + {l}" for i, l in places))

    def machine(self, limit):
        m = self.results["machine"]
        m["host"] = os.uname().nodename
        m["cpus"] = os.cpu_count()
        m["python"] = sys.version.split()[0]
        # The Python that has PyTorch: this one, else the system's (a pyenv or venv first on PATH may lack it).
        self.torch_python = None
        for python in dict.fromkeys([sys.executable, shutil.which("python3"), "/usr/bin/python3"]):
            version = python and self.query([python, "-c", "import torch; print(torch.__version__)"])
            if version:
                self.torch_python, m["torch"] = python, f"{version} ({python})"
                break
        else:
            m["torch"] = "not importable"
        if self.no_gpu:
            return "CPU only (--no-gpu)"
        q = self.query(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total", "--format=csv,noheader"])
        if not q:
            raise RuntimeError("no GPU: nvidia-smi answered nothing (run with --no-gpu for the CPU half)")
        name, driver, cap, memory = [s.strip() for s in q.splitlines()[0].split(",")]
        m.update(gpu=name, driver=driver, compute_capability=cap, gpu_memory=memory)
        self.arch = cap.replace(".", "")
        cuda_root, nvcc = self.find_cuda()
        m["nvcc"] = (re.search(r"release ([0-9.]+)", self.query([nvcc, "--version"])) or [None, "?"])[1]
        self.cuda_root, self.nvcc = cuda_root, nvcc
        self.cudnn_include, self.cudnn_link_dir, self.cudnn_run_dir = self.find_cudnn(cuda_root)
        version = {}
        header = os.path.join(self.cudnn_include, "cudnn_version.h")
        if os.path.isfile(header):
            for key in ("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"):
                hit = re.search(rf"#define {key}\s+(\d+)", open(header).read())
                version[key] = hit.group(1) if hit else "?"
            m["cudnn"] = ".".join(version.values())
        m["cudnn_dir"] = self.cudnn_include
        return f"{name}, sm_{self.arch}, driver {driver}, CUDA {m['nvcc']}, cuDNN {m.get('cudnn', '?')}"

    # -- stages

    def env(self):
        libs = [os.path.join(self.kit, "deps", "usr", "lib", "x86_64-linux-gnu")]
        if not self.no_gpu:
            libs.append(self.cudnn_run_dir)
        old = os.environ.get("LD_LIBRARY_PATH")
        return {"LD_LIBRARY_PATH": ":".join(libs + ([old] if old else []))}

    def configure_and_build(self, limit):
        deps = os.path.join(self.kit, "deps", "usr")
        libdir = os.path.join(deps, "lib", "x86_64-linux-gnu")
        cmd = ["cmake", "-S", os.path.join(self.kit, "src"), "-B", self.build, "-DCMAKE_BUILD_TYPE=Release",
               f"-DCMAKE_PREFIX_PATH={deps}", "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local",
               f"-DSPNG_INCLUDE_DIR={deps}/include", f"-DSPNG_LIBRARY={libdir}/libspng.so",
               f"-DJPEG_INCLUDE_DIR={deps}/include", f"-DJPEG_LIBRARY={libdir}/libjpeg.so",
               f"-DZLIB_INCLUDE_DIR={deps}/include", f"-DZLIB_LIBRARY={libdir}/libz.so",
               "-DDL_ONEDNN=OFF", "-DDL_BLAS=OFF", "-DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON",
               f"-DPython3_EXECUTABLE={sys.executable}"]
        if shutil.which("ninja"):
            cmd.append("-GNinja")
        if shutil.which("ccache") and os.environ.get("DL_KIT_CCACHE", "1") != "0":
            cmd += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"]
        if self.no_gpu:
            cmd += ["-DDL_CUDA=OFF", "-DDL_BUILD_EXAMPLES=ON"]
        else:
            cmd += ["-DDL_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={self.arch}", f"-DCMAKE_CUDA_COMPILER={self.nvcc}",
                    f"-DCUDAToolkit_ROOT={self.cuda_root}", f"-DCUDNN_INCLUDE_DIR={self.cudnn_include}",
                    f"-DCUDNN_LIBRARY={self.cudnn_link_dir}/libcudnn.so"]
        t0 = time.monotonic()
        self.sh("configure", cmd, limit, env=self.env())
        targets = ["test_kernels", "test_kernels_barrier_bug", "bench_kernels", "bench_train_step", "train_mnist",
                   "dl-sweep"] + ([] if self.no_gpu else ["test_gpu_parity", "test_custom_op_gpu"])
        remaining = limit - (time.monotonic() - t0)
        self.sh("build", ["cmake", "--build", self.build, "--parallel", str(self.jobs), "--target"] + targets,
                remaining, env=self.env())
        return f"targets {', '.join(targets)}"

    def ctest(self, label):
        def run(limit):
            out = self.sh(f"ctest-{label}", ["ctest", "--test-dir", self.build, "-L", label, "--output-on-failure",
                                             "--timeout", str(int(limit))], limit, env=self.env())
            summary = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", out)
            skipped = len(re.findall(r"\(Skipped\)", out))
            self.results["figures"][f"ctest_{label}"] = {"summary": summary.group(0) if summary else "?",
                                                         "skipped": skipped}
            return (summary.group(0) if summary else "") + (f", {skipped} skipped" if skipped else "")
        return run

    def bench(self, name, binary, filt, limit, env=None):
        path = os.path.join(self.out, f"{name}.json")
        output = self.sh(name, [os.path.join(self.bin, binary), f"--benchmark_filter={filt}",
                                "--benchmark_format=console", f"--benchmark_out={path}", "--benchmark_out_format=json"],
                         limit, env=dict(self.env(), **(env or {})))
        if "Failed to match any benchmarks" in output:
            raise RuntimeError(f"no case of {binary} matches {filt} (expected at least one)")
        with open(path) as f:
            rows = json.load(f)["benchmarks"]
        return [r for r in rows if not r.get("error_occurred")], [r for r in rows if r.get("error_occurred")]

    def libdl_steps(self, limit):
        steps = self.results["figures"].setdefault("libdl_steps", [])
        if self.no_gpu:
            rows, errors = self.bench("libdl-steps-cpu", "bench_train_step", "^MnistTrainStep/libdl/fp32/batch:128/", limit)
            for r in rows:
                steps.append({"model": "mnist", "batch": 128, "config": "fp32", "device": "cpu",
                              "ms": to_ms(r), "name": r["name"]})
            return f"{len(rows)} cases"
        # Each precision libdl offers on CUDA today: float32, and TF32 tensor cores for convolutions.
        t0, errors_all = time.monotonic(), []
        for config, tf32 in (("fp32", "0"), ("tf32", "1")):
            rows, errors = self.bench(f"libdl-steps-{config}", "bench_kernels", "^Cuda/(MnistTrainStep|DeepLabTrainStep)",
                                      limit - (time.monotonic() - t0), env={"DL_ALLOW_TF32": tf32})
            errors_all += [f"{r['name']} ({config}): {r.get('error_message', '')}" for r in errors]
            for r in rows:
                args = dict(re.findall(r"/(\w+):(\d+)", r["name"]))
                model = "mnist" if "Mnist" in r["name"] else "deeplab"
                row = {"model": model, "batch": int(args.get("batch", 0)), "config": config, "device": "cuda",
                       "ms": to_ms(r), "name": r["name"], "device_peak_MiB": r.get("device_peak_MiB")}
                if "h" in args:
                    row["size"] = f"{args['h']}x{args['w']}"
                steps.append(row)
        self.results["figures"]["libdl_step_errors"] = errors_all
        return f"{len(steps)} cases" + (f", {len(errors_all)} errors" if errors_all else "")

    def torch_steps(self, limit):
        if not self.torch_python:
            raise RuntimeError(f"no Python here imports torch (tried {sys.executable} and the system's python3)")
        path = os.path.join(self.out, "torch.json")
        cmd = [self.torch_python, os.path.join(self.kit, "src", "scripts", "gpu_kit_torch.py"), "--out", path,
               "--budget", str(int(limit * 0.8)), "--device", "cpu" if self.no_gpu else "cuda"]
        if self.no_gpu:
            cmd.append("--quick")
        self.sh("torch-steps", cmd, limit)
        with open(path) as f:
            data = json.load(f)
        self.results["figures"]["torch"] = data
        return f"{len(data['steps'])} cases, torch {data.get('torch')}" + (
            f", not reached: {len(data['not_reached'])}" if data["not_reached"] else "")

    def kernel_bandwidth(self, limit):
        filt = ("^Emulated/elementwise/(fill|add)/" if self.no_gpu else
                "^Cuda/(fill|add|axpy_acc|sum|cross_entropy|argmax|segmentation_counts|sgdm|adam|resize_bilinear|"
                "concat|split|batch_norm_infer)/")
        rows, errors = self.bench("kernels", "bench_kernels", filt, limit)
        self.results["figures"]["kernels"] = [
            {"name": r["name"], "GBps": r.get("bytes_per_second", 0) / 1e9, "us": to_ms(r) * 1000} for r in rows]
        return f"{len(rows)} kernels" + (f", {len(errors)} errors" if errors else "")

    def train_mnist(self, limit):
        data = os.path.join(self.kit, "data", "mnist")
        cmd = [os.path.join(self.bin, "train_mnist"), "--device", "cpu" if self.no_gpu else "cuda"]
        if os.path.isdir(data):
            cmd += ["--data", data]
        if self.no_gpu:
            cmd += ["--epochs", "1"]  # the CPU half checks the program runs; the recipe's 50 epochs are the GPU's
        out = self.sh("train-mnist", cmd, limit, cwd=self.out, env=self.env())
        fig = {"command": " ".join(cmd[1:])}
        for key, pattern in (("accuracy", r"Test accuracy: ([0-9.]+)"), ("train_s", r"Training: .*?\(([0-9.]+) s"),
                             ("images_per_s", r"([0-9.]+) images/s"), ("peak_rss_MiB", r"peak RSS ([0-9.]+) MiB")):
            hit = re.search(pattern, out)
            if hit:
                fig[key] = float(hit.group(1))
        self.results["figures"]["train_mnist"] = fig
        if "accuracy" not in fig:
            raise RuntimeError("train_mnist printed no 'Test accuracy:' line (log: logs/train-mnist.log)")
        return f"accuracy {fig['accuracy']:.4f} in {fig.get('train_s', float('nan')):.1f} s"

    def sweep(self, limit):
        folder = os.path.join(self.out, "sweep")
        batches = "128,1024" if self.no_gpu else "128,1024,8192"
        cmd = [os.path.join(self.bin, "dl-sweep"), "run", "--out", folder, "--batch", batches, "--epochs", "1",
               "--device", "cpu" if self.no_gpu else "cuda", "--timeout", str(int(limit / 3))]
        data = os.path.join(self.kit, "data", "mnist")
        if os.path.isdir(data):
            cmd += ["--", "--data", data]
        self.sh("sweep", cmd, limit, env=self.env())
        report = os.path.join(folder, "report.json")
        with open(report) as f:
            self.results["figures"]["sweep"] = json.load(f)
        return f"report {os.path.relpath(report, self.out)}"

    # -- the report

    def write_report(self):
        os.makedirs(self.out, exist_ok=True)
        self.results["elapsed_s"] = round(time.monotonic() - self.start, 1)
        write_atomically(os.path.join(self.out, "results.json"), json.dumps(self.results, indent=2, default=str) + "\n")
        write_atomically(os.path.join(self.out, "report.md"), render(self.results))

    def main(self):
        signal.signal(signal.SIGTERM, self.on_sigterm)
        os.makedirs(self.out, exist_ok=True)
        if not os.path.isdir(os.path.join(self.kit, "src")) or not os.path.isdir(os.path.join(self.kit, "deps")):
            self.results["stages"].append({"name": "kit", "status": "failed",
                                           "detail": f"{self.kit} is not a kit (expected src/ and deps/ from "
                                                     "`gpu_kit.sh pack`)"})
            self.write_report()
            return 1
        stages = [("machine", 60, self.machine), ("build", 600 if self.no_gpu else 300, self.configure_and_build)]
        if not self.no_gpu:
            stages.append(("ctest -L gpu", 120, self.ctest("gpu")))
        stages += [("ctest -L kernels", 120, self.ctest("kernels")), ("libdl steps", 120, self.libdl_steps),
                   ("PyTorch steps", 150, self.torch_steps), ("kernel bandwidth", 60, self.kernel_bandwidth),
                   ("train_mnist", 120 if self.no_gpu else 150, self.train_mnist), ("sweep", 120, self.sweep)]
        blocked = None  # the machine and the build come first: without them nothing else can run
        for i, (name, limit, fn) in enumerate(stages):
            if blocked:
                self.results["stages"].append({"name": name, "limit_s": limit, "status": "not reached",
                                               "detail": blocked})
            elif not self.stage(name, limit, fn) and i < 2:
                last = self.results["stages"][-1]
                blocked = (last["detail"] if last["status"] == "not reached"
                           else f"the {name} stage did not finish ({last['status']})")
        self.write_report()
        failed = [s["name"] for s in self.results["stages"] if s["status"] != "ok"]
        print(f"gpu_kit: report {os.path.join(self.out, 'report.md')}" +
              (f"; not ok: {', '.join(failed)}" if failed else "; every stage ok"))
        return 1 if failed else 0


def to_ms(row):
    """A Google Benchmark row's time per iteration in milliseconds."""
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[row.get("time_unit", "ns")]
    return row["real_time"] * scale


def render(r):
    """OUT/report.md: the machine, each stage, each figure, libdl beside PyTorch as ratios."""
    m, f = r["machine"], r["figures"]
    lines = ["# libdl GPU kit report", "",
             f"Mode: {r['mode']}; started {r['started']}; {r.get('elapsed_s', 0)} s of a {r['budget_s']:.0f} s budget.", ""]
    lines += ["## Machine", ""] + [f"- {k}: {v}" for k, v in m.items()] + [""]
    lines += ["## Stages", "", "| stage | status | seconds | detail |", "|---|---|---|---|"]
    for s in r["stages"]:
        lines.append(row_of([s["name"], s["status"], s.get("seconds", ""), str(s.get("detail", "")).replace("\n", " ")]))
    lines.append("")
    torch_steps = (f.get("torch") or {}).get("steps", [])
    if f.get("libdl_steps") or torch_steps:
        lines += ["## Training steps (median ms per step; ratio = libdl / PyTorch's fastest, below 1 is libdl faster)", "",
                  "| model | size | batch | libdl config | libdl ms | device peak MiB | PyTorch fastest | PyTorch ms | ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in f.get("libdl_steps", []):
            same = [t for t in torch_steps if t["model"] == s["model"] and t["batch"] == s["batch"]
                    and t.get("size") == s.get("size")]
            best = min(same, key=lambda t: t["ms"]) if same else None
            torch_cells = [best["config"], f"{best['ms']:.2f}", f"{s['ms'] / best['ms']:.2f}"] if best else ["-"] * 3
            lines.append(row_of([s["model"], s.get("size", "28x28"), s["batch"], s["config"], f"{s['ms']:.2f}",
                                 fmt(s.get("device_peak_MiB"), ".0f")] + torch_cells))
        if torch_steps:
            lines += ["", "PyTorch, every configuration:", "", "| model | size | batch | config | ms | device peak MiB |",
                      "|---|---|---|---|---|---|"]
            for t in torch_steps:
                lines.append(row_of([t["model"], t.get("size", "28x28"), t["batch"], t["config"], f"{t['ms']:.2f}",
                                     fmt(t.get("device_peak_MiB"), ".0f")]))
        for e in f.get("libdl_step_errors", []) + (f.get("torch") or {}).get("errors", []):
            lines.append(f"- error: {e}")
        lines.append("")
    if f.get("kernels"):
        peak = (f.get("torch") or {}).get("copy_GBps")
        lines += ["## Hand-written kernels", "",
                  f"Device copy bandwidth (PyTorch, 1 GiB): {peak:.0f} GB/s" if peak else
                  "No device copy bandwidth measured (PyTorch did not run on the device).", "",
                  "| kernel | µs | GB/s | of copy bandwidth |", "|---|---|---|---|"]
        for k in f["kernels"]:
            share = f"{k['GBps'] / peak:.0%}" if peak else "-"
            lines.append(row_of([k["name"], f"{k['us']:.1f}", f"{k['GBps']:.1f}", share]))
        lines.append("")
    if f.get("train_mnist"):
        t = f["train_mnist"]
        lines += ["## train_mnist", "", f"`train_mnist {t['command']}`: " + ", ".join(
            f"{k} {v}" for k, v in t.items() if k != "command"), ""]
    if f.get("sweep"):
        lines += ["## Batch-size sweep", "", "| batch | " + " | ".join(sweep_columns(f["sweep"])) + " |",
                  "|---|" + "---|" * len(sweep_columns(f["sweep"]))]
        for row in sweep_rows(f["sweep"]):
            lines.append(row_of([row.get("batch", "?")] + [fmt(row.get(c)) for c in sweep_columns(f["sweep"])]))
        lines.append("")
    lines += ["## Not done", ""]
    missing = [f"{s['name']} ({s['status']})" for s in r["stages"] if s["status"] != "ok"]
    missing += [f"PyTorch {n}" for n in (f.get("torch") or {}).get("not_reached", [])]
    lines += [f"- {n}" for n in missing] or ["- nothing: every stage ran and every PyTorch case was reached"]
    return "\n".join(lines) + "\n"


def sweep_rows(report):
    rows = report.get("rows") if isinstance(report, dict) else None
    return rows if isinstance(rows, list) else []


def sweep_columns(report):
    wanted = ["status", "train_seconds", "images_per_second", "allocator_peak_bytes", "nvml_gpu_memory_bytes",
              "os_peak_rss_bytes", "util_mean", "relative_time"]
    present = {k for row in sweep_rows(report) for k in row}
    return [c for c in wanted if c in present] or sorted(present - {"batch"})[:6]


def fmt(v, spec=".4g"):
    if isinstance(v, float):
        return format(v, spec)
    return "" if v is None else str(v)


def row_of(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="gather what a bare GPU machine lacks into DIR")
    pk.add_argument("dir")
    rn = sub.add_parser("run", help="build, test and benchmark from the kit DIR; the report goes to OUT")
    rn.add_argument("dir")
    rn.add_argument("out")
    rn.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run (default 480; 900 with --no-gpu, whose build runs on a few CPUs)")
    rn.add_argument("--no-gpu", action="store_true", help="build without CUDA and run the CPU half")
    rn.add_argument("--jobs", type=int, default=0, help="build jobs (default: the CPUs)")
    a = p.parse_args()
    if a.command == "pack":
        return pack(a)
    if a.budget is None:
        a.budget = 900 if a.no_gpu else 480
    if a.budget <= 0:
        fail(f"run: --budget must be positive seconds (got {a.budget})")
    return Run(a).main()


if __name__ == "__main__":
    sys.exit(main())
