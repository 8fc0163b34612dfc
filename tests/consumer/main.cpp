// Trains a tiny classifier for a few steps through the installed libdl and checks that the loss fell.
#include <dl/dl.h>

#include <cstdio>

int main() {
  dl::Generator gen(7);
  dl::nn::Sequential net;
  net.add("fc1", std::make_shared<dl::nn::Linear>(4, 16, true, dl::nn::Init::kHeNormal, gen));
  net.add("relu", std::make_shared<dl::nn::ReLU>());
  net.add("fc2", std::make_shared<dl::nn::Linear>(16, 3, true, dl::nn::Init::kGlorotUniform, gen));
  dl::Tensor x = dl::Tensor::randn({64, 4}, gen);
  std::vector<int32_t> labels(64);
  for (int i = 0; i < 64; ++i) labels[i] = x.data<float>()[i * 4] > 0 ? (x.data<float>()[i * 4 + 1] > 0 ? 2 : 1) : 0;
  dl::Tensor y = dl::Tensor::from_vector<int32_t>({64}, labels);
  dl::optim::Adam adam(net.parameter_refs(), {0.01});
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    dl::Tensor loss = dl::ops::cross_entropy(net(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  std::printf("libdl %s consumer: loss %.4f -> %.4f\n", DL_VERSION, first, last);

  // The README's broadcasting example, through the installed headers.
  using namespace dl;
  Tensor xi = Tensor::randn({4, 16, 28, 28}, gen);
  Tensor b = Tensor::zeros({16, 1, 1}).set_requires_grad(true);
  Tensor yi = ops::sigmoid(xi + b) * 2.0 - 1.0;
  Tensor m = ops::where(ops::gt(yi, 0.0), yi, ops::exp(yi) - 1.0);
  Tensor s = ops::mean(m * m, {0, 2, 3}, /*keepdim=*/true);
  ops::sum(s).backward();
  Tensor t = ops::permute(xi, {0, 2, 3, 1});
  const bool shapes_ok =
      s.shape() == Shape({1, 16, 1, 1}) && b.grad().shape() == Shape({16, 1, 1}) && t.shape() == Shape({4, 28, 28, 16});
  std::printf("broadcasting: %s\n", shapes_ok ? "ok" : "wrong shapes");

  // An op of one's own (dl/ops/custom.h), its backward checked by the installed dl::testing::gradcheck.
  using Inputs = std::vector<dl::Tensor>;
  dl::ops::CustomOp cube("cube");
  cube.cpu([](const Inputs& in) { return dl::ops::mul(dl::ops::mul(in[0], in[0]), in[0]); },
           [](const Inputs& in, const dl::Tensor&, const dl::Tensor& gy, const std::vector<bool>&) {
             return Inputs{dl::ops::mul(dl::ops::mul(dl::ops::mul(in[0], in[0]), gy), 3.0)};
           });
  const dl::testing::GradcheckResult check = dl::testing::gradcheck([&cube](const Inputs& in) { return cube(in); },
                                                                    {dl::Tensor::randn({5}, gen, dl::DType::kFloat64)});
  std::printf("custom op gradcheck: %s\n", check.message.c_str());
  return last < 0.5 * first && shapes_ok && check.ok ? 0 : 1;
}
