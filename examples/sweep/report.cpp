// The sweep report and the merge of reports.
#include "report.h"

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "dl/core/file_io.h"
#include "dl/core/parse.h"
#include "machine.h"
#include "programs.h"
#include "runner.h"
#include "svg.h"
#include "units.h"

namespace dl::sweep {

namespace {
const double kNaN = std::nan("");

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) { write_file_atomically(path, text); }

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string pct(double v) { return std::isnan(v) ? "" : fixed(100 * v, 1) + "%"; }
std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
std::string md_cell(std::string s) {
  for (auto& c : s)
    if (c == '|' || c == '\n') c = c == '|' ? '/' : ' ';
  return s;
}
std::string lr_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The columns of the training log the trainer writes with --log-csv.
struct Curves {
  std::vector<double> iteration, loss, accuracy, val_loss, val_accuracy;
};
Curves read_log_csv(const std::string& path) {
  Curves c;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return c;
  std::vector<std::string> header;
  {
    std::istringstream h(line);
    std::string f;
    while (std::getline(h, f, ',')) header.push_back(f);
  }
  auto col = [&](const std::string& name) {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    return -1;
  };
  const int ci = col("iteration"), cl = col("loss"), ca = col("accuracy"), cvl = col("validation_loss"),
            cva = col("validation_accuracy");
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::istringstream r(line);
    std::string f;
    while (std::getline(r, f, ',')) v.push_back(f.empty() ? kNaN : std::strtod(f.c_str(), nullptr));
    while (v.size() < header.size()) v.push_back(kNaN);
    auto get = [&](int i) { return i >= 0 ? v[static_cast<size_t>(i)] : kNaN; };
    c.iteration.push_back(get(ci));
    c.loss.push_back(get(cl));
    c.accuracy.push_back(get(ca));
    c.val_loss.push_back(get(cvl));
    c.val_accuracy.push_back(get(cva));
  }
  return c;
}

// " r2" for a row of several ranks, nothing for one process.
std::string ranks_tag(const Json& row) {
  const double ranks = row.number_at("ranks", 1);
  return ranks != 1 ? " r" + csv_num(ranks) : "";
}

// The name of a row's group in the sweep pictures: everything but the batch size.
std::string group_of(const Json& row) {
  return "e" + csv_num(row.number_at("epochs")) + " " + row.string_at("device") + ranks_tag(row) + " t" +
         csv_num(row.number_at("threads_used")) + " " + row.string_at("solver") + " lr" +
         lr_text(row.number_at("learn_rate"));
}

void plot_run_curves(const std::string& out_dir, Json& row) {
  const std::string log = out_dir + "/" + row.string_at("run_dir") + "/log.csv";
  if (!std::filesystem::exists(log)) return;
  const Curves c = read_log_csv(log);
  if (c.iteration.empty()) return;
  std::vector<double> acc_pct, val_acc_pct;
  for (double a : c.accuracy) acc_pct.push_back(100 * a);
  for (double a : c.val_accuracy) val_acc_pct.push_back(100 * a);
  const std::string dir = out_dir + "/" + row.string_at("run_dir");
  LineChart loss{"Loss, " + row.string_at("id"), "iteration", "cross-entropy loss", {}};
  loss.series = {{"training (mini-batch)", c.iteration, c.loss}, {"validation", c.iteration, c.val_loss, true, true}};
  loss.y_from_zero = true;
  write_svg(dir + "/loss.svg", loss);
  LineChart acc{"Accuracy, " + row.string_at("id"), "iteration", "accuracy (%)", {}};
  acc.series = {{"training (mini-batch)", c.iteration, acc_pct}, {"validation", c.iteration, val_acc_pct, true, true}};
  write_svg(dir + "/accuracy.svg", acc);
  rasterise(dir + "/loss.svg");
  rasterise(dir + "/accuracy.svg");
  row["curves"]["loss"] = row.string_at("run_dir") + "/loss.svg";
  row["curves"]["accuracy"] = row.string_at("run_dir") + "/accuracy.svg";
}

void plot_sweep(const std::string& out_dir, const Json& report) {
  std::map<std::string, size_t> groups;
  std::vector<std::string> order;
  for (const auto& r : report.at_path("rows")->items()) {
    if (r.string_at("status") != "ok") continue;
    const std::string g = group_of(r);
    if (!groups.count(g)) {
      groups[g] = order.size();
      order.push_back(g);
    }
  }
  if (order.empty()) return;
  LineChart time{"Training time against batch size", "mini-batch size", "training time (s)", {}};
  LineChart speed{"Throughput against batch size", "mini-batch size", "images/s (training steps)", {}};
  LineChart mem{"Memory against batch size", "mini-batch size", "MiB", {}};
  for (auto* c : {&time, &speed, &mem}) c->log2_x = true, c->y_from_zero = true;
  for (const auto& g : order) {
    const std::string suffix = order.size() > 1 ? " (" + g + ")" : "";
    Series t{"training time" + suffix}, s{"images/s" + suffix}, a{"allocator peak" + suffix}, rss{"peak RSS" + suffix};
    for (const auto& r : report.at_path("rows")->items()) {
      if (r.string_at("status") != "ok" || group_of(r) != g) continue;
      const double b = r.number_at("batch");
      t.x.push_back(b), t.y.push_back(r.number_at("train_seconds"));
      s.x.push_back(b), s.y.push_back(r.number_at("images_per_second"));
      a.x.push_back(b), a.y.push_back(r.number_at("allocator_peak_bytes") / 1048576.0);
      rss.x.push_back(b), rss.y.push_back(r.number_at("os_peak_rss_bytes") / 1048576.0);
    }
    for (auto* x : {&t, &s, &a, &rss}) x->markers = true;
    rss.dashed = true;
    time.series.push_back(t);
    speed.series.push_back(s);
    mem.series.push_back(a);
    mem.series.push_back(rss);
  }
  std::filesystem::create_directories(out_dir + "/plots");
  write_svg(out_dir + "/plots/time_vs_batch.svg", time);
  write_svg(out_dir + "/plots/throughput_vs_batch.svg", speed);
  write_svg(out_dir + "/plots/memory_vs_batch.svg", mem);
  for (const char* f : {"time_vs_batch", "throughput_vs_batch", "memory_vs_batch"})
    rasterise(out_dir + "/plots/" + f + ".svg");
}

// Whether a row is the reference: a run id, a 1-based row number, or conditions on the row's
// columns joined by commas ("batch=1024", "ranks=1,batch=1024"), every one of which must hold.
bool matches_reference(const Json& row, const std::string& ref, size_t index) {
  if (ref.empty()) return false;
  if (std::all_of(ref.begin(), ref.end(), ::isdigit)) return index + 1 == std::stoul(ref);
  if (ref.find('=') == std::string::npos) return row.string_at("id") == ref;
  std::istringstream conditions(ref);
  for (std::string cond; std::getline(conditions, cond, ',');) {
    const size_t eq = cond.find('=');
    const std::string column = cond.substr(0, eq), want = eq == std::string::npos ? "" : cond.substr(eq + 1);
    const Json* have = row.find(column);
    DL_CHECK(have && (have->is_number() || have->is_string()), "dl-sweep report: reference '", ref,
             "': expected conditions COLUMN=VALUE on batch, ranks, epochs, threads, device, solver, learn_rate, ",
             "image_size; got '", cond, "'");
    const bool holds = have->is_number()
                           ? have->number() == dl::parse_double(want, -1e300, 1e300, "dl-sweep report: " + column)
                           : have->string() == want;
    if (!holds) return false;
  }
  return true;
}
}  // namespace

std::string hms(double seconds) {
  if (std::isnan(seconds)) return "";
  const int64_t s = std::llround(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

bool rasterise(const std::string& svg_path) {
  static const bool have = !find_on_path("rsvg-convert").empty();
  if (!have) return false;
  const std::string png = svg_path.substr(0, svg_path.size() - 4) + ".png";
  const std::string cmd = "rsvg-convert -o '" + png + "' '" + svg_path + "' 2>/dev/null";
  const int rc = std::system(cmd.c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

Json build_report(const std::string& out_dir, const std::string& reference) {
  Json report = Json::object();
  const std::string machine_text = read_text(out_dir + "/machine.json");
  report["machine"] = machine_text.empty() ? describe_machine() : Json::parse(machine_text);
  report["utilisation_definition"] =
      "CPU: process CPU time (user + system, from wait4; every rank's) / (wall time x threads x ranks); the peak is "
      "the same ratio over 1-second windows sampled from /proc/<pid>/stat";
  report["memory_definition"] =
      "peak device memory: the allocator's peak of bytes in use by tensors (on the CPU, host memory); "
      "peak host RSS: the kernel's ru_maxrss of the child process (VmHWM; of several ranks, the largest)";
  Json rows = Json::array();
  const std::vector<Json> records = load_results(out_dir + "/results.jsonl");
  for (const Json& rec : records) {
    const Config c = Config::from_json(*rec.find("config"));
    const Json& rep = rec.find("report") ? *rec.find("report") : Json();
    Json row = Json::object();
    row["id"] = rec.string_at("id");
    row["key"] = rec.string_at("key");
    row["status"] = rec.string_at("status");
    row["error"] = rec.string_at("error");
    row["program"] = c.program;
    row["batch"] = c.batch;
    row["epochs"] = c.epochs;
    row["device"] = c.device;
    row["ranks"] = c.ranks;
    row["threads"] = c.threads;
    const double threads_used = rep.number_at("config.threads", c.threads > 0 ? c.threads : 0);
    row["threads_used"] = threads_used;
    row["image_size"] = c.image_size > 0 ? c.image_size : rep.number_at("config.image_size");
    row["solver"] = c.solver;
    row["learn_rate"] = c.learn_rate;
    Json metrics = Json::object();
    const ProgramSpec* spec = nullptr;
    for (const auto& p : all_programs())
      if (p.name == c.program) spec = &p;
    if (spec)
      for (const auto& m : spec->metrics) metrics[m.title] = rep.number_at(m.path);
    row["metrics"] = metrics;
    row["train_seconds"] = rep.number_at("training.seconds");
    row["iterations"] = rep.number_at("training.iterations");
    row["images_per_second"] = rep.number_at("training.images_per_second");  // every rank together
    row["images_per_second_per_rank"] =
        rep.number_at("training.images_per_second_per_rank", rep.number_at("training.images_per_second") / c.ranks);
    row["allocator_peak_bytes"] = rep.number_at("memory.allocator_peak_bytes");
    row["os_peak_rss_bytes"] = rec.number_at("os_peak_rss_bytes");
    row["child_peak_rss_bytes"] = rep.number_at("memory.peak_rss_bytes");
    const double wall = rec.number_at("wall_seconds"), cpu = rec.number_at("cpu_seconds");
    const double threads = threads_used > 0 ? threads_used * c.ranks : report.number_at("machine.cpu_online", 1);
    const double mean = wall > 0 ? cpu / (wall * threads) : kNaN;
    const double peak_cores = rec.number_at("peak_cpu_cores", 0);
    row["util_mean"] = mean;
    row["util_peak"] = std::max(mean, peak_cores / threads);
    row["nvml_gpu_memory_bytes"] = Json();  // CPU runs: none
    row["wall_seconds"] = wall;
    row["run_dir"] = rec.string_at("run_dir");
    row["command"] = rec.string_at("command");
    if (const Json* e = rep.at_path("training.epoch_seconds")) row["epoch_seconds"] = *e;
    rows.push_back(row);
  }
  // The reference row: the one asked for, else the first that finished.
  double ref_time = kNaN;
  std::string ref_id;
  for (size_t i = 0; i < rows.items().size(); ++i) {
    const Json& r = rows.items()[i];
    if (r.string_at("status") == "ok" &&
        (matches_reference(r, reference, i) || (reference.empty() && ref_id.empty()))) {
      ref_time = r.number_at("train_seconds");
      ref_id = r.string_at("id");
      if (!reference.empty()) break;
    }
  }
  DL_CHECK(reference.empty() || !ref_id.empty(), "dl-sweep report: no finished row matches the reference '", reference,
           "'");
  Json out_rows = Json::array();
  for (Json r : rows.items()) {
    r["relative_time"] = r.string_at("status") == "ok" ? r.number_at("train_seconds") / ref_time : kNaN;
    out_rows.push_back(r);
  }
  report["reference"] = ref_id;
  report["rows"] = out_rows;
  return report;
}

std::string report_markdown(const Json& report) {
  const Json& m = *report.find("machine");
  std::ostringstream md;
  md << "# Sweep report\n\n";
  md << "**Machine:** " << machine_summary(m) << "  \n";
  md << "CPU: " << m.string_at("cpu_model") << ", " << m.number_at("cpu_logical_cores") << " logical cores ("
     << m.number_at("cpu_online") << " online); RAM " << format_mib(m.number_at("ram_bytes")) << " MiB; host "
     << m.string_at("hostname") << " (" << m.string_at("kernel") << ")  \n";
  md << "GPU: " << m.string_at("gpu.name", "none");
  if (!std::isnan(m.number_at("gpu.memory_bytes"))) md << ", " << format_mib(m.number_at("gpu.memory_bytes")) << " MiB";
  md << "; driver " << (m.string_at("gpu.driver").empty() ? "none" : m.string_at("gpu.driver")) << "; CUDA "
     << (m.string_at("gpu.cuda").empty() ? "none" : m.string_at("gpu.cuda")) << "; cuDNN "
     << (m.string_at("gpu.cudnn").empty() ? "none" : m.string_at("gpu.cudnn")) << "  \n";
  md << "libdl " << m.string_at("build.libdl_version") << "; CUDA backend "
     << (m.at_path("build.cuda_backend") && m.at_path("build.cuda_backend")->boolean() ? "on" : "off") << "; "
     << m.string_at("build.options") << "; " << m.string_at("build.compiler") << "\n\n";
  md << "Reference row for \"time / ref\": `" << report.string_at("reference") << "`.  \n";
  md << "Utilisation — " << report.string_at("utilisation_definition") << ".  \n";
  md << "Memory — " << report.string_at("memory_definition") << ". GPU memory (NVML): empty on the CPU.\n\n";

  std::vector<std::string> metric_titles;
  for (const auto& r : report.at_path("rows")->items())
    for (const auto& [k, v] : r.find("metrics")->members())
      if (std::find(metric_titles.begin(), metric_titles.end(), k) == metric_titles.end()) metric_titles.push_back(k);

  md << "| # | batch | epochs | device | ranks | threads per rank | image | solver | learn rate | status |";
  for (const auto& t : metric_titles) md << " " << t << " |";
  md << " training time | iterations | images/s | images/s per rank | time / ref | peak device mem (MiB) |"
        " peak host RSS (MiB) | util mean | util peak | GPU mem NVML (MiB) | curves |\n|";
  for (size_t i = 0; i < 21 + metric_titles.size(); ++i) md << "---|";
  md << "\n";
  std::vector<std::string> notes;
  size_t index = 0;
  for (const auto& r : report.at_path("rows")->items()) {
    ++index;
    const bool ok = r.string_at("status") == "ok";
    std::string status = ok ? "ok" : "failed";
    if (!ok) {
      notes.push_back(md_cell(r.string_at("error")));
      status += " [" + std::to_string(notes.size()) + "]";
    }
    md << "| " << index << " | " << r.number_at("batch") << " | " << r.number_at("epochs") << " | "
       << r.string_at("device") << " | " << r.number_at("ranks", 1) << " | " << r.number_at("threads_used") << " | "
       << csv_num(r.number_at("image_size")) << " | " << r.string_at("solver") << " | "
       << lr_text(r.number_at("learn_rate")) << " | " << status << " |";
    for (const auto& t : metric_titles) {
      const double v = r.find("metrics")->number_at(t);
      md << " " << (t == "accuracy" ? pct(v) : fixed(v, 4)) << " |";
    }
    std::string curves;
    if (r.find("curves"))
      curves = "[loss](" + r.string_at("curves.loss") + ") [accuracy](" + r.string_at("curves.accuracy") + ")";
    md << " " << (ok ? hms(r.number_at("train_seconds")) : "") << " | " << csv_num(r.number_at("iterations")) << " | "
       << fixed(r.number_at("images_per_second"), 0) << " | " << fixed(r.number_at("images_per_second_per_rank"), 0)
       << " | " << fixed(r.number_at("relative_time"), 2) << " | " << format_mib(r.number_at("allocator_peak_bytes"))
       << " | " << format_mib(r.number_at("os_peak_rss_bytes")) << " | " << pct(r.number_at("util_mean")) << " | "
       << pct(r.number_at("util_peak")) << " | " << format_mib(r.number_at("nvml_gpu_memory_bytes")) << " | " << curves
       << " |\n";
  }
  if (!notes.empty()) {
    md << "\n";
    for (size_t i = 0; i < notes.size(); ++i) md << "[" << i + 1 << "] " << notes[i] << "  \n";
  }
  md << "\n## Pictures\n\n"
     << "![training time against batch size](plots/time_vs_batch.svg)\n"
     << "![throughput against batch size](plots/throughput_vs_batch.svg)\n"
     << "![memory against batch size](plots/memory_vs_batch.svg)\n";
  return md.str();
}

std::string report_csv(const Json& report) {
  std::ostringstream csv;
  std::vector<std::string> metric_titles;
  for (const auto& r : report.at_path("rows")->items())
    for (const auto& [k, v] : r.find("metrics")->members())
      if (std::find(metric_titles.begin(), metric_titles.end(), k) == metric_titles.end()) metric_titles.push_back(k);
  csv << "machine,id,program,batch,epochs,device,ranks,threads,image_size,solver,learn_rate,status";
  for (const auto& t : metric_titles) csv << "," << csv_field(t);
  csv << ",training_time_hms,training_seconds,iterations,images_per_second,images_per_second_per_rank,relative_time,"
         "peak_device_memory_bytes,peak_host_rss_bytes,util_mean,util_peak,nvml_gpu_memory_bytes,error\n";
  const std::string machine = report.string_at("machine.hostname");
  for (const auto& r : report.at_path("rows")->items()) {
    csv << csv_field(machine) << "," << csv_field(r.string_at("id")) << "," << r.string_at("program") << ","
        << csv_num(r.number_at("batch")) << "," << csv_num(r.number_at("epochs")) << "," << r.string_at("device") << ","
        << csv_num(r.number_at("ranks", 1)) << "," << csv_num(r.number_at("threads_used")) << ","
        << csv_num(r.number_at("image_size")) << "," << r.string_at("solver") << ","
        << csv_num(r.number_at("learn_rate")) << "," << r.string_at("status");
    for (const auto& t : metric_titles) csv << "," << csv_num(r.find("metrics")->number_at(t));
    const bool ok = r.string_at("status") == "ok";
    csv << "," << (ok ? hms(r.number_at("train_seconds")) : "") << "," << csv_num(r.number_at("train_seconds")) << ","
        << csv_num(r.number_at("iterations")) << "," << csv_num(r.number_at("images_per_second")) << ","
        << csv_num(r.number_at("images_per_second_per_rank")) << "," << csv_num(r.number_at("relative_time")) << ","
        << csv_num(r.number_at("allocator_peak_bytes")) << "," << csv_num(r.number_at("os_peak_rss_bytes")) << ","
        << csv_num(r.number_at("util_mean")) << "," << csv_num(r.number_at("util_peak")) << ","
        << csv_num(r.number_at("nvml_gpu_memory_bytes")) << "," << csv_field(r.string_at("error")) << "\n";
  }
  return csv.str();
}

Json write_report(const ReportOptions& o) {
  Json report = build_report(o.out_dir, o.reference);
  if (o.plots) {
    Json rows = Json::array();
    for (Json r : report.find("rows")->items()) {
      if (r.string_at("status") == "ok") plot_run_curves(o.out_dir, r);
      rows.push_back(r);
    }
    report["rows"] = rows;
    plot_sweep(o.out_dir, report);
  }
  write_text(o.out_dir + "/report.json", report.dump(2) + "\n");
  write_text(o.out_dir + "/report.csv", report_csv(report));
  write_text(o.out_dir + "/report.md", report_markdown(report));
  return report;
}

void merge_reports(const std::vector<std::string>& paths, std::vector<std::string> names,
                   const std::string& out_prefix) {
  DL_CHECK(!paths.empty(), "dl-sweep merge: give at least one report.json");
  std::vector<Json> reports;
  for (const auto& p : paths) {
    const std::string text = read_text(p);
    DL_CHECK(!text.empty(), p, ": cannot read the report");
    reports.push_back(Json::parse(text));
  }
  for (size_t i = names.size(); i < reports.size(); ++i) names.push_back(std::string(1, static_cast<char>('A' + i)));
  auto match_key = [](const Json& r) {
    return r.string_at("program") + " b" + csv_num(r.number_at("batch")) + " e" + csv_num(r.number_at("epochs")) +
           ranks_tag(r) + " s" + csv_num(r.number_at("image_size")) + " " + r.string_at("solver") + " lr" +
           lr_text(r.number_at("learn_rate"));
  };
  // Rows in first-seen order over all reports; the ratio is against the first report's reference.
  std::vector<std::string> keys;
  std::map<std::string, const Json*> first_row;
  for (const auto& rep : reports)
    for (const auto& r : rep.at_path("rows")->items())
      if (!first_row.count(match_key(r))) {
        keys.push_back(match_key(r));
        first_row[match_key(r)] = &r;
      }
  double ref_time = kNaN;
  for (const auto& r : reports[0].at_path("rows")->items())
    if (r.string_at("id") == reports[0].string_at("reference")) ref_time = r.number_at("train_seconds");
  auto find_row = [&](const Json& rep, const std::string& key) -> const Json* {
    for (const auto& r : rep.at_path("rows")->items())
      if (match_key(r) == key) return &r;
    return nullptr;
  };

  std::ostringstream md, csv;
  md << "# Sweeps side by side\n\n| machine | CPU | cores | RAM (GiB) | GPU | driver / CUDA / cuDNN | libdl |\n"
        "|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < reports.size(); ++i) {
    const Json& m = *reports[i].find("machine");
    md << "| " << names[i] << " (" << m.string_at("hostname") << ") | " << m.string_at("cpu_model") << " | "
       << m.number_at("cpu_online") << " | " << fixed(m.number_at("ram_bytes") / 1073741824.0, 1) << " | "
       << m.string_at("gpu.name", "none") << " | " << m.string_at("gpu.driver") << " / " << m.string_at("gpu.cuda")
       << " / " << m.string_at("gpu.cudnn") << " | " << m.string_at("build.libdl_version") << " |\n";
  }
  md << "\nTime / ref: training time over that of `" << reports[0].string_at("reference") << "` on " << names[0]
     << ". Memory in MiB (device: allocator peak; RSS: the kernel's peak of the process).\n\n";
  md << "| batch | epochs | ranks | image | solver | learn rate |";
  for (const auto& n : names)
    md << " " << n << ": accuracy | " << n << ": time | " << n << ": time / ref | " << n << ": device mem | " << n
       << ": RSS |";
  md << "\n|";
  for (size_t i = 0; i < 6 + 5 * names.size(); ++i) md << "---|";
  md << "\n";
  csv << "machine,hostname,program,batch,epochs,ranks,image_size,solver,learn_rate,status,accuracy,training_seconds,"
         "relative_time,peak_device_memory_bytes,peak_host_rss_bytes,images_per_second\n";
  for (const auto& key : keys) {
    const Json& f = *first_row[key];
    md << "| " << f.number_at("batch") << " | " << f.number_at("epochs") << " | " << f.number_at("ranks", 1) << " | "
       << csv_num(f.number_at("image_size")) << " | " << f.string_at("solver") << " | "
       << lr_text(f.number_at("learn_rate")) << " |";
    for (size_t i = 0; i < reports.size(); ++i) {
      const Json* r = find_row(reports[i], key);
      if (!r) {
        md << " | | | | |";
        continue;
      }
      const bool ok = r->string_at("status") == "ok";
      const double t = r->number_at("train_seconds");
      const double acc = r->find("metrics") ? r->find("metrics")->number_at("accuracy") : kNaN;
      if (ok)
        md << " " << pct(acc) << " | " << hms(t) << " | " << fixed(t / ref_time, 2) << " | "
           << format_mib(r->number_at("allocator_peak_bytes")) << " | " << format_mib(r->number_at("os_peak_rss_bytes"))
           << " |";
      else
        md << " failed: " << md_cell(r->string_at("error")).substr(0, 60) << " | | | | |";
      csv << csv_field(names[i]) << "," << csv_field(reports[i].string_at("machine.hostname")) << ","
          << r->string_at("program") << "," << csv_num(r->number_at("batch")) << "," << csv_num(r->number_at("epochs"))
          << "," << csv_num(r->number_at("ranks", 1)) << "," << csv_num(r->number_at("image_size")) << ","
          << r->string_at("solver") << "," << csv_num(r->number_at("learn_rate")) << "," << r->string_at("status")
          << "," << csv_num(acc) << "," << csv_num(ok ? t : kNaN) << "," << csv_num(ok ? t / ref_time : kNaN) << ","
          << csv_num(r->number_at("allocator_peak_bytes")) << "," << csv_num(r->number_at("os_peak_rss_bytes")) << ","
          << csv_num(r->number_at("images_per_second")) << "\n";
    }
    md << "\n";
  }
  write_text(out_prefix + ".md", md.str());
  write_text(out_prefix + ".csv", csv.str());
}

}  // namespace dl::sweep
