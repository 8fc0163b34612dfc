// The fit probe: growing, bisecting, one fresh process per try.
#include "probe.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dl/core/file_io.h"
#include "machine.h"
#include "process.h"
#include "programs.h"
#include "report.h"
#include "units.h"

namespace dl::sweep {

namespace {
Json read_json(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty()) return Json();
  try {
    return Json::parse(text);
  } catch (const dl::Error&) {
    return Json();
  }
}
std::string last_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}
}  // namespace

int64_t next_probe_batch(const std::vector<ProbeTry>& tries, int64_t start, int64_t max_batch, double tolerance) {
  if (tries.empty()) return start;
  int64_t fit = 0, fail = 0;  // the largest that fit, the smallest that failed
  for (const auto& t : tries) {
    if (t.fit)
      fit = std::max(fit, t.batch);
    else
      fail = fail == 0 ? t.batch : std::min(fail, t.batch);
  }
  if (fail == 0) {  // growing
    if (fit >= max_batch) return 0;
    return std::min(max_batch, fit * 2);
  }
  if (fit == 0) {  // even the start failed: shrink
    return fail > 1 ? fail / 2 : 0;
  }
  const int64_t gap = std::max<int64_t>(1, static_cast<int64_t>(std::floor(tolerance * static_cast<double>(fit))));
  if (fail - fit <= gap) return 0;
  return fit + (fail - fit) / 2;
}

ProbeResult run_probe(const ProbeOptions& o) {
  DL_CHECK(o.memory_limit > 0, "dl-sweep probe: give --memory-limit (the device's memory on the CPU)");
  const ProgramSpec& spec = find_program(o.program);
  DL_CHECK(!spec.probe_steps_flag.empty() && !spec.memory_limit_flag.empty(), spec.name,
           " has no probe flags (--probe-steps, --memory-limit)");
  const std::string binary = o.binary.empty() ? executable_dir() + "/" + spec.binary : o.binary;
  DL_CHECK(std::filesystem::exists(binary), "dl-sweep probe: ", binary, " not found");
  auto log = o.log ? o.log : [](const std::string& m) { std::cout << m << std::endl; };
  std::filesystem::create_directories(o.out_dir + "/tries");

  std::vector<std::string> common;
  if (o.threads > 0) common.insert(common.end(), {spec.threads_flag, std::to_string(o.threads)});
  if (o.image_size > 0) common.insert(common.end(), {spec.image_size_flag, std::to_string(o.image_size)});
  common.insert(common.end(), spec.quiet_flags.begin(), spec.quiet_flags.end());
  common.insert(common.end(), o.extra_args.begin(), o.extra_args.end());

  ProbeResult r;
  if (!spec.estimate_flag.empty()) {
    std::vector<std::string> argv{binary, spec.estimate_flag, o.out_dir + "/estimate.json"};
    argv.insert(argv.end(), common.begin(), common.end());
    log("estimate: measuring the memory per batch element");
    const ChildResult cr = run_child(argv, o.out_dir + "/estimate.log");
    const Json e = read_json(o.out_dir + "/estimate.json");
    if (cr.ok() && e.is_object()) {
      r.per_element_bytes = e.number_at("per_element_bytes", 0);
      r.fixed_bytes = e.number_at("fixed_bytes", 0);
      if (r.per_element_bytes > 0)
        r.predicted_largest =
            static_cast<int64_t>((static_cast<double>(o.memory_limit) - r.fixed_bytes) / r.per_element_bytes);
      log("estimate: " + format_mib(r.per_element_bytes * 1024) + " MiB per 1024 elements + " +
          format_mib(r.fixed_bytes) + " MiB fixed; predicted largest batch " + std::to_string(r.predicted_largest));
    } else {
      log("estimate failed: " + cr.describe() + ": " + last_line(cr.output_tail));
    }
  }

  for (int64_t b; (b = next_probe_batch(r.tries, o.start, o.max_batch, o.tolerance)) > 0 && !stop_requested();) {
    const std::string report = o.out_dir + "/tries/b" + std::to_string(b) + ".json";
    std::filesystem::remove(report);
    std::vector<std::string> argv{binary,
                                  spec.batch_flag,
                                  std::to_string(b),
                                  spec.probe_steps_flag,
                                  std::to_string(o.steps),
                                  spec.memory_limit_flag,
                                  std::to_string(o.memory_limit),
                                  spec.report_flag,
                                  report};
    argv.insert(argv.end(), common.begin(), common.end());
    const ChildResult cr = run_child(argv, o.out_dir + "/tries/b" + std::to_string(b) + ".log");
    const Json rep = read_json(report);
    ProbeTry t;
    t.batch = b;
    t.fit = cr.ok() && rep.string_at("status") == "ok";
    t.allocator_peak_bytes = rep.number_at("memory.allocator_peak_bytes");
    t.child_peak_rss_bytes = rep.number_at("memory.peak_rss_bytes");
    t.os_peak_rss_bytes = static_cast<double>(cr.max_rss_bytes);
    t.predicted_bytes =
        r.per_element_bytes > 0 ? r.fixed_bytes + r.per_element_bytes * static_cast<double>(b) : std::nan("");
    t.seconds = cr.wall_seconds;
    if (!t.fit) {
      t.error = rep.string_at("error");
      if (t.error.empty()) t.error = cr.describe() + ": " + last_line(cr.output_tail);
    }
    log("batch " + std::to_string(b) + ": " + (t.fit ? "fits" : "does not fit") + " (allocator peak " +
        format_mib(t.allocator_peak_bytes) + " MiB, peak RSS " + format_mib(t.os_peak_rss_bytes) + " MiB)" +
        (t.fit ? "" : ": " + t.error));
    r.tries.push_back(t);
  }
  for (const auto& t : r.tries) {
    if (t.fit)
      r.largest_fit = std::max(r.largest_fit, t.batch);
    else
      r.smallest_fail = r.smallest_fail == 0 ? t.batch : std::min(r.smallest_fail, t.batch);
  }
  return r;
}

void write_probe_report(const ProbeOptions& o, const ProbeResult& r) {
  Json j = Json::object();
  j["machine"] = describe_machine();
  j["program"] = o.program;
  j["memory_limit_bytes"] = o.memory_limit;
  j["limit_applies_to"] = "the CPU allocator's bytes held from the system (tensors in use plus cache)";
  j["steps_per_try"] = o.steps;
  j["largest_fit"] = r.largest_fit;
  j["smallest_fail"] = r.smallest_fail;
  j["estimate"]["per_element_bytes"] = r.per_element_bytes;
  j["estimate"]["fixed_bytes"] = r.fixed_bytes;
  j["estimate"]["predicted_largest"] = r.predicted_largest;
  Json tries = Json::array();
  for (const auto& t : r.tries) {
    Json x = Json::object();
    x["batch"] = t.batch;
    x["fit"] = t.fit;
    x["allocator_peak_bytes"] = t.allocator_peak_bytes;
    x["os_peak_rss_bytes"] = t.os_peak_rss_bytes;
    x["child_peak_rss_bytes"] = t.child_peak_rss_bytes;
    x["predicted_bytes"] = t.predicted_bytes;
    x["seconds"] = t.seconds;
    x["error"] = t.error;
    tries.push_back(x);
  }
  j["tries"] = tries;
  dl::write_file_atomically(o.out_dir + "/probe.json", j.dump(2) + '\n');

  std::ostringstream md;
  md << "# Fit probe: " << o.program << "\n\n**Machine:** " << machine_summary(j["machine"]) << "  \n"
     << "Memory limit: " << format_mib(static_cast<double>(o.memory_limit))
     << " MiB on the CPU allocator (bytes held from the system: tensors in use plus its cache; an allocation "
        "over it first empties the cache, then fails with \"out of memory\").  \n"
     << "Each try: a fresh process, " << o.steps << " training steps at the batch size.\n\n"
     << "**Largest batch size that trains: " << (r.largest_fit ? std::to_string(r.largest_fit) : "none") << "**; "
     << (r.smallest_fail ? "smallest that does not: " + std::to_string(r.smallest_fail)
                         : "every size tried fit (up to the maximum)")
     << ".\n\n";
  if (r.per_element_bytes > 0)
    md << "Estimate before running (allocator peak of one step at batch 1, 2, 4, 8, fitted with a line): "
       << static_cast<int64_t>(std::llround(r.per_element_bytes)) << " bytes per batch element + "
       << format_mib(r.fixed_bytes)
       << " MiB fixed (data, weights, gradients, optimiser state) → predicted largest batch " << r.predicted_largest
       << ".\n\n";
  md << "| try | batch | fits | allocator peak (MiB) | predicted (MiB) | predicted / measured | peak RSS, kernel (MiB) "
        "|"
        " peak RSS, VmHWM (MiB) | seconds | error |\n|---|---|---|---|---|---|---|---|---|---|\n";
  int n = 0;
  for (const auto& t : r.tries) {
    const double ratio =
        t.fit && t.allocator_peak_bytes > 0 ? t.predicted_bytes / t.allocator_peak_bytes : std::nan("");
    char rbuf[32] = "";
    if (!std::isnan(ratio)) std::snprintf(rbuf, sizeof rbuf, "%.2f", ratio);
    char sbuf[32];
    std::snprintf(sbuf, sizeof sbuf, "%.1f", t.seconds);
    std::string err = t.error;
    for (auto& c : err)
      if (c == '|' || c == '\n') c = ' ';
    md << "| " << ++n << " | " << t.batch << " | " << (t.fit ? "yes" : "no") << " | "
       << format_mib(t.allocator_peak_bytes) << " | " << format_mib(t.predicted_bytes) << " | " << rbuf << " | "
       << format_mib(t.os_peak_rss_bytes) << " | " << format_mib(t.child_peak_rss_bytes) << " | " << sbuf << " | "
       << err << " |\n";
  }
  md << "\nA try that does not fit stops at the allocation that would cross the limit, so its allocator peak is "
        "what it held then, not what it needed.\n";
  dl::write_file_atomically(o.out_dir + "/probe.md", md.str());
}

}  // namespace dl::sweep
