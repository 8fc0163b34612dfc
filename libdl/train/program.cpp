// The frame of the training programs (dl/train/program.h).
#include "dl/train/program.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "dl/core/allocator.h"
#include "dl/core/error.h"
#include "dl/core/file_io.h"
#include "dl/core/rng.h"
#include "dl/core/threads.h"
#include "dl/dist/process_group.h"

namespace dl::train {

TrainingProgram::TrainingProgram(std::string name, std::string summary, const TrainingOptions& recipe)
    : name_(name), flags_(name, std::move(summary)), o_(recipe), report_(name) {
  add_training_flags(flags_, o_);
  flags_.add({"device"}, &device_, "cpu or cuda (cuda:N for device N)");
  flags_.add({"threads"}, &threads_, "CPU threads (0: all)", 0, 1024);
  flags_.add({"seed"}, &o_.seed, "seed of initialisation, shuffling and augmentation");
  flags_.add({"save"}, &save_, "write the trained model to this file");
  flags_.add({"resume"}, &resume_, "continue from a checkpoint written with --checkpoint-path");
  flags_.add({"report-json"}, &report_json_, "write a JSON summary of the run here (also when it fails)");
  flags_.add({"memory-limit"}, &memory_limit_, "cap on the CPU allocator's bytes, e.g. 512MiB (0: none)");
  flags_.add({"probe-steps"}, &probe_steps_,
             "fit probe: train this many steps at the batch size on repeated training images, no validation (0: off)",
             int64_t{0}, int64_t{1} << 30);
  flags_.add({"progress"}, &progress_, "progress line with ETA: auto, in-place, plain or off");
}

int TrainingProgram::run(int argc, char** argv, const std::function<void()>& body) {
  return run_main(
      name_,
      [&] {
        if (!flags_.parse(argc, argv)) return;
        set_up();
        body();
        report_.write("ok");
      },
      [&](const std::string& error) { report_.write("failed", error); });
}

void TrainingProgram::set_up() {
  o_.validate();  // every option checked before any arithmetic on it
  const dist::LaunchInfo launch = dist::launch_info();
  const bool distributed = o_.distributed.value_or(launch.size > 1) && launch.size > 1;
  if (distributed) {
    dist::world();  // MPI starts here, before any thread of the run
    // Rank 0 alone prints, saves and reports; the others' stdout goes nowhere (errors still reach stderr).
    if (launch.rank != 0) {
      save_.clear(), report_json_.clear(), o_.log_csv.clear();
      DL_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr, name_, ": cannot silence rank ", launch.rank,
               "'s output");
    }
  }
  check_output_paths({{save_, "model file"}, {report_json_, "run report"}, {o_.log_csv, "training log"}});
  o_.device = Device::parse(device_);
  // --device cuda under a launcher: each rank of a machine takes its own GPU (the local rank's, counted
  // among the devices this rank sees: one each under srun --gpus-per-task).
  if (distributed && o_.device.is_cuda()) {
    const bool indexed = device_.find(':') != std::string::npos;
    DL_CHECK(!indexed || launch.local_size == 1, "--device ", device_, ": under ", launch.local_size,
             " ranks per machine each rank takes its own GPU; give --device cuda without an index");
    const int visible = cuda_device_count();
    if (!indexed && visible > 0) o_.device = Device::cuda(launch.local_rank % visible);
  }
  report_.set_path(report_json_);
  report_.set_device(o_.device);
  if (probing()) o_.max_epochs = 1, o_.validation_patience = 0;
  Json& cfg = report_.config();
  cfg["device"] = device_;
  cfg["solver"] = std::string(option_name(o_.solver));
  cfg["precision"] = std::string(option_name(o_.precision));
  cfg["memory_format"] = std::string(option_name(o_.memory_format));
  cfg["initial_learn_rate"] = o_.initial_learn_rate;
  cfg["max_epochs"] = o_.max_epochs;
  cfg["mini_batch_size"] = o_.mini_batch_size;
  cfg["validation_frequency"] = o_.validation_frequency;
  cfg["seed"] = o_.seed;
  cfg["probe_steps"] = probe_steps_;
  cfg["log_csv"] = o_.log_csv;
  CpuAllocator::instance().set_limit(parse_memory_limit(memory_limit_));
  parse_progress_mode(progress_);  // a bad word fails here, before any work
  // Ranks sharing a machine share its cores: without --threads each takes its part of them, or the
  // cores the launcher bound it to (mpirun binds each of two ranks to one core).
  if (threads_ == 0 && distributed && launch.local_size > 1) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    cpu_set_t mask;
    const int bound = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : cores;
    threads_ = std::max(1, bound < cores ? bound : cores / launch.local_size);
  }
  if (threads_ > 0) set_num_threads(threads_);
  manual_seed(o_.seed);
  cfg["threads"] = num_threads();
  cfg["world_size"] = launch.size > 1 && distributed ? launch.size : 1;
}

bool TrainingProgram::resume(Trainer& t) const {
  if (resume_.empty()) return false;
  t.load_checkpoint(resume_);
  std::printf("Resumed from %s after epoch %d (iteration %lld)\n", resume_.c_str(), t.epoch(),
              static_cast<long long>(t.iteration()));
  return true;
}

TrainingReport TrainingProgram::fit(Trainer& t, std::shared_ptr<const data::Dataset> train) {
  t.set_progress(parse_progress_mode(progress_));
  if (probing()) {  // exactly probe_steps full batches of the requested size, one epoch, nothing else
    train = first_n(train, probe_steps_ * o_.mini_batch_size);
    t.set_validation_data(nullptr);
  }
  const TrainingReport r = t.fit(train);
  report_.add_training(r);
  if (probing())
    std::printf("Probe: %lld steps at batch %lld fit; peak RSS %.1f MiB, allocator peak %.1f MiB\n",
                static_cast<long long>(r.iterations), static_cast<long long>(o_.mini_batch_size),
                r.peak_rss_bytes / 1048576.0, r.allocator_peak_bytes / 1048576.0);
  return r;
}

void TrainingProgram::print_summary(const TrainingReport& r) const {
  std::printf("\nTraining: %d epochs, %lld iterations, %s (%.1f s; %.2f s per epoch), %.1f images/s%s\n",
              r.epochs_completed, static_cast<long long>(r.iterations), format_hms(r.total_seconds).c_str(),
              r.total_seconds, r.epoch_seconds.empty() ? 0.0 : r.total_seconds / r.epoch_seconds.size(),
              r.images_per_second, r.stopped_early ? " (stopped early)" : "");
  if (r.world_size > 1)
    std::printf("Data parallel: %d ranks, %.1f images/s per rank, %.1f images/s in all\n", r.world_size,
                r.images_per_second / r.world_size, r.images_per_second);
  std::printf("Memory: peak RSS %.1f MiB, %s allocator peak %.1f MiB\n", r.peak_rss_bytes / 1048576.0,
              o_.device.str().c_str(), r.allocator_peak_bytes / 1048576.0);
  if (r.loss_scale > 0)
    std::printf("Loss scaling: %lld steps skipped (gradients overflowed), final scale %g\n",
                static_cast<long long>(r.skipped_steps), r.loss_scale);
}

void TrainingProgram::estimate_memory(const std::string& path,
                                      const std::function<std::unique_ptr<nn::Layer>()>& make_model,
                                      std::shared_ptr<const data::Dataset> train) {
  check_output_path(path, "memory estimate");
  Json j = Json::object(), points = Json::array();
  j["method"] = "allocator peak of one training step at batch 1, 2, 4 and 8, fitted with a line";
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;  // least squares of peak bytes against batch size
  for (int64_t b : {1, 2, 4, 8}) {
    TrainingOptions o = o_;
    o.mini_batch_size = b;
    o.max_epochs = 1;
    o.verbose = false;
    o.log_csv.clear();
    o.checkpoint_path.clear();
    const std::unique_ptr<nn::Layer> model = make_model();
    Trainer trainer(*model, o);
    trainer.set_output(nullptr);
    const double x = static_cast<double>(b),
                 y = static_cast<double>(trainer.fit(first_n(train, b)).allocator_peak_bytes);
    Json p = Json::object();
    p["batch"] = b;
    p["allocator_peak_bytes"] = static_cast<int64_t>(y);
    points.push_back(p);
    n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  j["points"] = points;
  j["per_element_bytes"] = slope;
  j["fixed_bytes"] = (sy - slope * sx) / n;
  write_file_atomically(path, j.dump(2) + '\n');
  std::printf("Memory estimate: %.0f bytes per batch element + %.0f bytes fixed (written to %s)\n", slope,
              (sy - slope * sx) / n, path.c_str());
}

int run_main(const std::string& name, const std::function<void()>& body,
             const std::function<void(const std::string&)>& on_error) {
  try {
    body();
    dist::shutdown();  // NCCL and MPI end while the CUDA runtime is up (a no-op without a world)
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    const std::string message = error_message(e);
    const bool distributed = dist::world_is_distributed();
    if (distributed)
      std::fprintf(stderr, "%s: error on rank %d of %d: %s\n", name.c_str(), dist::world().rank(), dist::world().size(),
                   message.c_str());
    else
      std::fprintf(stderr, "%s: error: %s\n", name.c_str(), message.c_str());
    if (on_error) {
      try {
        on_error(message);
      } catch (const std::exception& e2) {
        std::fprintf(stderr, "%s: error: cannot write the report: %s\n", name.c_str(), error_message(e2).c_str());
      }
    }
    // Note [lost ranks]: the other ranks may wait in a collective for this one; stop them all now.
    if (distributed) dist::world().abort(1);
    return 1;
  }
}

std::shared_ptr<const data::Dataset> first_n(std::shared_ptr<const data::Dataset> d, int64_t n) {
  if (n <= 0) return d;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i % d->size();
  return std::make_shared<data::SubsetDataset>(d, std::move(idx));
}

}  // namespace dl::train
