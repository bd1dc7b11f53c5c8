// Python bindings of the int8 GEMM (kernels/qgemm/qgemm.h), for tests and benchmarks; included by bindings.cpp
// only.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <tuple>

#include "kernels/qgemm/qgemm.h"

namespace dlc {

namespace qpy {
namespace py = pybind11;
template <typename T>
using Arr = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline std::shared_ptr<QgemmPackedB> pack(Arr<int8_t> q, Arr<float> scale) {
  if (q.ndim() != 2) throw std::invalid_argument("qgemm_pack: q must be [N, K] int8");
  if (scale.ndim() != 1 || scale.shape(0) != q.shape(0))
    throw std::invalid_argument("qgemm_pack: scale must be [N] for q of shape [N, K]");
  return std::make_shared<QgemmPackedB>(qgemm_pack_b(q.data(), q.shape(1), q.shape(0), scale.data()));
}

inline py::array_t<float> run(const QgemmPackedB& b, Arr<uint8_t> a, float sa, int32_t za) {
  if (a.ndim() != 2 || a.shape(1) != b.K) throw std::invalid_argument("qgemm: a must be [M, K] uint8");
  const int64_t M = a.shape(0), K = b.K, lda = qgemm_row_bytes(K);
  std::unique_ptr<uint8_t[]> padded(new uint8_t[static_cast<size_t>(std::max<int64_t>(M * lda, 1))]());
  for (int64_t i = 0; i < M; ++i) std::memcpy(padded.get() + i * lda, a.data() + i * K, static_cast<size_t>(K));
  py::array_t<float> c({M, b.N});
  py::gil_scoped_release release;
  qgemm(M, padded.get(), lda, sa, za, b, c.mutable_data(), b.N, 1);
  return c;
}

}  // namespace qpy

inline void bind_qgemm(pybind11::module_& m) {
  namespace py = pybind11;
  using qpy::Arr;
  py::class_<QgemmPackedB, std::shared_ptr<QgemmPackedB>>(m, "QgemmPacked", py::module_local())
      .def_property_readonly("K", [](const QgemmPackedB& b) { return b.K; })
      .def_property_readonly("N", [](const QgemmPackedB& b) { return b.N; })
      .def_property_readonly("nbytes", &QgemmPackedB::bytes)
      .def("__call__", &qpy::run, py::arg("a"), py::arg("scale"), py::arg("zero_point"),
           "float32 [M, N] = dequantized uint8 a [M, K] times these weights");
  m.def("qgemm_pack", &qpy::pack, py::arg("q"), py::arg("scale"), "pack int8 weights [N, K] with scales [N]");
  m.def("quantize_weights_s8", [](Arr<float> w, bool trans) {
    if (w.ndim() != 2) throw std::invalid_argument("quantize_weights_s8: w must be 2-D");
    const int64_t K = trans ? w.shape(1) : w.shape(0), N = trans ? w.shape(0) : w.shape(1);
    py::array_t<int8_t> q({N, K});
    py::array_t<float> s({N});
    quantize_weights_s8(w.data(), trans, K, N, q.mutable_data(), s.mutable_data());
    return std::make_tuple(q, s);
  }, py::arg("w"), py::arg("trans") = false,
        "per-output-channel symmetric int8: (q [N, K], scale [N]) of w [K, N] ([N, K] when trans)");
  m.def("quantize_u8", [](Arr<float> x, float scale, int32_t zero_point) {
    if (x.ndim() != 2) throw std::invalid_argument("quantize_u8: x must be 2-D");
    if (!(scale > 0.0f) || zero_point < 0 || zero_point > 255)
      throw std::invalid_argument("quantize_u8: scale must be > 0 and zero_point in [0, 255]");
    const int64_t R = x.shape(0), K = x.shape(1);
    py::array_t<uint8_t> q({R, K});
    quantize_u8(x.data(), R, K, K, scale, zero_point, q.mutable_data(), K);
    return q;
  }, py::arg("x"), py::arg("scale"), py::arg("zero_point"));
  m.def("dynamic_u8_params", [](Arr<float> x) {
    float s;
    int32_t z;
    dynamic_u8_params(x.data(), x.size(), &s, &z);
    return std::make_tuple(s, z);
  }, py::arg("x"), "(scale, zero_point) of dynamic uint8 quantization (ONNX DynamicQuantizeLinear)");
  m.def("qgemm_force_isa", &qgemm_force_isa);
  m.def("qgemm_kernel_name", &qgemm_kernel_name);
}

}  // namespace dlc
