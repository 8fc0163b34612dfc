// A data-parallel run in which rank 1 is lost, for tests/test_dist_fault.py (under mpirun -np 2):
//   dist_fault FOLDER stall|kill   rank 1 stops (SIGSTOP) or dies (SIGKILL) at iteration 3, in epoch 2,
//                                  after the checkpoint of epoch 1 was written to FOLDER
//   dist_fault FOLDER resume       continues from FOLDER/checkpoint_epoch1.dlck to the end
// It must end with a non-zero status within the timeout and the error naming rank 1 (stall, kill),
// and then resume from the last checkpoint (resume).
#include <signal.h>

#include <cstdio>
#include <string>

#include "dl/dl.h"
#include "dl/train/program.h"

namespace {
class LoseRank1 : public dl::train::TrainingObserver {
 public:
  LoseRank1(int rank, int sig) : rank_(rank), sig_(sig) {}
  void on_iteration(const dl::train::IterationRecord& r) override {
    if (rank_ == 1 && sig_ != 0 && r.iteration == 3) {
      std::fprintf(stderr, "dist_fault: rank 1 raises signal %d at iteration 3\n", sig_);
      raise(sig_);
    }
  }

 private:
  int rank_, sig_;
};
}  // namespace

int main(int argc, char** argv) {
  return dl::train::run_main("dist_fault", [&] {
    DL_CHECK(argc == 3, "usage: dist_fault FOLDER stall|kill|resume");
    const std::string folder = argv[1], mode = argv[2];
    dl::Generator gen(1);
    const int64_t n = 64;
    auto data = std::make_shared<dl::data::TensorDataset>(dl::Tensor::uniform({n, 1, 8, 8}, 0, 1, gen),
                                                          dl::Tensor::zeros({n}, dl::DType::kInt32));
    dl::nn::MnistCnn model({.filters = {4}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 2}, gen);
    dl::train::TrainingOptions o;
    o.mini_batch_size = 32;  // two iterations per epoch
    o.max_epochs = 4;
    o.verbose = false;
    o.checkpoint_path = folder;
    dl::train::Trainer trainer(model, o);
    DL_CHECK(trainer.process_group() && trainer.process_group()->size() == 2, "dist_fault: run under mpirun -np 2");
    const int rank = trainer.process_group()->rank();
    LoseRank1 lose(rank, mode == "stall" ? SIGSTOP : mode == "kill" ? SIGKILL : 0);
    trainer.add_observer(lose);
    if (mode == "resume") trainer.load_checkpoint(folder + "/checkpoint_epoch1.dlck");
    const auto r = trainer.fit(data);
    std::printf("dist_fault: rank %d finished %d epochs\n", rank, r.epochs_completed);
  });
}
