// The observers that ship: MATLAB's progress table with the progress line, and the CSV log.
#include "dl/train/observer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>

namespace dl::train {

namespace {
constexpr int kTableWidth = 118;  // between the outer bars of the verbose table

std::string format(const char* fmt, double v) {  // "" for NaN: an empty cell
  if (std::isnan(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}
std::string percent(double v) { return format("%.2f%%", 100.0 * v); }
std::string fixed4(double v) { return format("%.4f", v); }
std::string csv_num(double v) { return format("%.9g", v); }
}  // namespace

ProgressTable::ProgressTable(std::ostream* out, bool table, int frequency, ProgressMode progress)
    : out_(out), table_(out && table), frequency_(frequency), line_(out, progress) {}

void ProgressTable::on_start(const FitStart& s) {
  start_ = s;
  if (!table_) return;
  const std::string rule(kTableWidth, '=');
  *out_ << "|" << rule << "|\n"
        << "|  Epoch  |  Iteration  |  Time Elapsed  |  Mini-batch  |  Validation  |  Mini-batch  |  Validation  |"
           "  Base Learning  |\n"
        << "|         |             |   (hh:mm:ss)   |   Accuracy   |   Accuracy   |     Loss     |     Loss     |"
           "      Rate       |\n"
        << "|" << rule << "|\n";
}

void ProgressTable::on_iteration(const IterationRecord& r) {
  const bool validated = !std::isnan(r.validation_loss);
  if (validated) validation_accuracy_ = r.validation_accuracy;
  if (row_at(r.iteration) || validated) print_row(r);
  if (line_.in_place()) {
    line_drawn_ = std::chrono::steady_clock::now();
    line_.update({r.epoch, start_.max_epochs, r.iteration, start_.last_iteration, r.seconds,
                  r.iteration - start_.iteration, r.loss, validation_accuracy_},
                 false);
  }
}

bool ProgressTable::row_at(int64_t iteration) const {
  return iteration == 1 || iteration % frequency_ == 0 || iteration == start_.last_iteration;
}

bool ProgressTable::needs_values_at(int64_t iteration) {
  if (table_ && row_at(iteration)) return true;
  return line_.in_place() && std::chrono::steady_clock::now() - line_drawn_ >= std::chrono::milliseconds(500);
}

void ProgressTable::on_epoch_end(const IterationRecord& last, double seconds) {
  if (last.iteration <= start_.iteration) return;  // no iteration in this fit() yet
  line_.update({last.epoch, start_.max_epochs, last.iteration, start_.last_iteration, seconds,
                last.iteration - start_.iteration, last.loss, validation_accuracy_},
               true);
}

void ProgressTable::on_end(const TrainingReport& r) {
  line_.finish();
  if (!table_) return;
  *out_ << "|" << std::string(kTableWidth, '=') << "|\n";
  if (r.stopped_early) *out_ << "Training stopped early: " << r.stop_reason << "\n";
}

void ProgressTable::print_row(const IterationRecord& r) {
  if (!table_) return;
  line_.clear();  // the in-place progress line makes room for the row
  char buf[256];
  std::snprintf(buf, sizeof buf, "| %7d | %11lld | %14s | %12s | %12s | %12s | %12s | %15s |\n", r.epoch,
                static_cast<long long>(r.iteration), format_hms(r.seconds).c_str(), percent(r.accuracy).c_str(),
                percent(r.validation_accuracy).c_str(), fixed4(r.loss).c_str(), fixed4(r.validation_loss).c_str(),
                fixed4(r.learn_rate).c_str());
  *out_ << buf << std::flush;
}

void CsvLog::on_start(const FitStart& s) {
  const bool fresh = s.iteration == 0 || !std::filesystem::exists(path_);
  file_ = CheckedAppendFile(path_, fresh);
  if (fresh) file_.write("epoch,iteration,time_s,learn_rate,loss,accuracy,validation_loss,validation_accuracy\n");
}

void CsvLog::on_iteration(const IterationRecord& r) {
  file_.write(std::to_string(r.epoch) + ',' + std::to_string(r.iteration) + ',' + csv_num(r.seconds) + ',' +
              csv_num(r.learn_rate) + ',' + csv_num(r.loss) + ',' + csv_num(r.accuracy) + ',' +
              csv_num(r.validation_loss) + ',' + csv_num(r.validation_accuracy) + '\n');
}

void CsvLog::on_end(const TrainingReport&) { file_.close(); }

}  // namespace dl::train
