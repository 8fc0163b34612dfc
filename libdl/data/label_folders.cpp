// Folders of label PNGs matched by name (dl/data/label_folders.h).
#include "dl/data/label_folders.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "dl/core/error.h"
#include "dl/data/label_image.h"

namespace dl::data {

namespace {
namespace fs = std::filesystem;

bool is_png(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

// The matching key of a label file: its stem without a trailing "_L".
std::string match_key(const fs::path& p) {
  std::string stem = p.stem().string();
  if (stem.size() > 2 && stem.ends_with("_L")) stem.resize(stem.size() - 2);
  return stem;
}

std::map<std::string, fs::path> list_label_pngs(const std::string& dir, const char* what) {
  DL_CHECK(fs::is_directory(dir), "the ", what, " folder '", dir, "' does not exist or is not a folder");
  std::map<std::string, fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || !is_png(entry.path())) continue;
    const auto [it, inserted] = files.emplace(match_key(entry.path()), entry.path());
    DL_CHECK(inserted, "'", it->second.string(), "' and '", entry.path().string(), "' in the ", what,
             " folder have the same name");
  }
  DL_CHECK(!files.empty(), "no PNG file in the ", what, " folder '", dir, "'");
  return files;
}
}  // namespace

void add_label_folders(const std::string& pred_dir, const std::string& truth_dir, metrics::SegmentationEvaluator& ev) {
  const auto pred = list_label_pngs(pred_dir, "prediction");
  const auto truth = list_label_pngs(truth_dir, "ground-truth");
  for (const auto& [key, path] : truth)
    DL_CHECK(pred.count(key), "the ground truth '", path.string(), "' has no prediction in '", pred_dir, "' (expected ",
             key, ".png)");
  for (const auto& [key, pred_path] : pred) {
    const auto t = truth.find(key);
    DL_CHECK(t != truth.end(), "the prediction '", pred_path.string(), "' has no ground truth in '", truth_dir,
             "' (expected ", key, ".png or ", key, "_L.png)");
    const Tensor p = read_label_png(pred_path.string());
    const Tensor g = read_label_png(t->second.string());
    DL_CHECK(p.shape() == g.shape(), "the prediction '", pred_path.string(), "' is ", p.size(0), " x ", p.size(1),
             " but its ground truth '", t->second.string(), "' is ", g.size(0), " x ", g.size(1));
    try {
      ev.add(p, g);
    } catch (const Error& e) {
      DL_THROW("prediction '", pred_path.string(), "', ground truth '", t->second.string(), "': ", e.what());
    }
  }
}

}  // namespace dl::data
