// The repeated inference call (`_core.Call`): what a Python call with the same input signature as an earlier,
// fully checked call needs, done in one C++ call. Python (dlc/inference.py) makes one Call per call key after
// the checked path has accepted it; the Call holds that key's signature (input names, dtypes, shapes) and its
// plan. A call checks the signature (the dict holds exactly these names, each an array of exactly that dtype
// and shape, C-contiguous), allocates the outputs 64-byte aligned so the plan computes them in place, runs the
// plan with the GIL released and returns {output name: array}. Anything that differs answers None without
// touching anything, and Python takes the checked path, which names the offending array.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/plan.h"

namespace dlc_call {

namespace py = pybind11;

inline py::dtype numpy_dtype(dlc::DType t) {
  switch (t) {
    case dlc::DType::F32: return py::dtype::of<float>();
    case dlc::DType::F64: return py::dtype::of<double>();
    case dlc::DType::I32: return py::dtype::of<int32_t>();
    case dlc::DType::I64: return py::dtype::of<int64_t>();
    case dlc::DType::Bool: return py::dtype::of<bool>();
  }
  throw std::invalid_argument("unknown dtype");
}

// An uninitialized, 64-byte aligned array (an arena buffer's alignment), owning its memory through a capsule.
inline py::array aligned_array(const dlc::Tensor& view) {
  const size_t bytes = (view.nbytes() + 63) / 64 * 64;
  void* data = std::aligned_alloc(64, bytes ? bytes : 64);
  if (!data) throw std::bad_alloc();
  py::capsule owner(data, [](void* p) { std::free(p); });
  std::vector<py::ssize_t> shape(view.shape, view.shape + view.ndim);
  return py::array(numpy_dtype(view.dtype), shape, {}, data, owner);
}

template <class PyPlanT>
class Call {
 public:
  // names/dtypes/shapes: every input of the call key, in a fixed order; positions[i]: its index among the
  // plan's inputs, or -1 when the plan does not read it; output_names: one per plan output.
  Call(py::object plan, std::vector<std::string> names, std::vector<py::dtype> dtypes,
       std::vector<std::vector<py::ssize_t>> shapes, std::vector<int> positions, int plan_inputs,
       std::vector<std::string> output_names, bool training)
      : owner_(std::move(plan)), plan_(owner_.cast<PyPlanT&>().plan), dtypes_(std::move(dtypes)),
        shapes_(std::move(shapes)), positions_(std::move(positions)), training_(training),
        in_ptrs_(static_cast<size_t>(plan_inputs), nullptr), in_bytes_(static_cast<size_t>(plan_inputs), 0) {
    if (names.size() != dtypes_.size() || names.size() != shapes_.size() || names.size() != positions_.size())
      throw std::invalid_argument("Call: one name, dtype, shape and position per input");
    if (output_names.size() != plan_.outputs().size())
      throw std::invalid_argument("Call: one name per plan output");
    for (auto& n : names) names_.push_back(py::str(n));
    for (auto& n : output_names) output_names_.push_back(py::str(n));
    for (int p : positions_)
      if (p >= plan_inputs) throw std::invalid_argument("Call: input position out of range");
  }

  // The outputs, or None when `inputs` does not match the signature (nothing has run then).
  py::object operator()(py::handle inputs, uint64_t seed, uint64_t step) const {
    PyObject* dict = inputs.ptr();
    if (!PyDict_CheckExact(dict) || PyDict_Size(dict) != static_cast<Py_ssize_t>(names_.size())) return py::none();
    auto& api = py::detail::npy_api::get();
    std::vector<const void*> in_ptrs = in_ptrs_;
    std::vector<size_t> in_bytes = in_bytes_;
    for (size_t i = 0; i < names_.size(); ++i) {
      PyObject* value = PyDict_GetItemWithError(dict, names_[i].ptr());  // borrowed
      if (!value) {
        if (PyErr_Occurred()) throw py::error_already_set();
        return py::none();
      }
      if (!api.PyArray_Check_(value)) return py::none();
      const auto* a = py::detail::array_proxy(value);
      if (!(a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) ||
          !api.PyArray_EquivTypes_(a->descr, dtypes_[i].ptr()) || a->nd != static_cast<int>(shapes_[i].size()))
        return py::none();
      size_t elements = 1;
      for (int d = 0; d < a->nd; ++d) {
        if (a->dimensions[d] != shapes_[i][d]) return py::none();
        elements *= static_cast<size_t>(a->dimensions[d]);
      }
      if (positions_[i] >= 0) {
        in_ptrs[positions_[i]] = a->data;
        in_bytes[positions_[i]] = elements * static_cast<size_t>(dtypes_[i].itemsize());
      }
    }
    const auto& slots = plan_.slots();
    const auto& outs = plan_.outputs();
    std::vector<py::array> arrays;
    std::vector<void*> out_ptrs;
    arrays.reserve(outs.size());
    out_ptrs.reserve(outs.size());
    for (int32_t s : outs) {
      arrays.push_back(aligned_array(slots[s].view));
      out_ptrs.push_back(arrays.back().mutable_data());
    }
    dlc::RunContext ctx;
    ctx.seed = seed;
    ctx.step = step;
    ctx.training = training_;
    {
      py::gil_scoped_release release;
      plan_.run(in_ptrs, in_bytes, out_ptrs, ctx, nullptr);
    }
    py::dict result;
    for (size_t j = 0; j < arrays.size(); ++j) result[output_names_[j]] = std::move(arrays[j]);
    return std::move(result);
  }

 private:
  py::object owner_;  // the Python plan object: keeps the plan (and its persistent arrays) alive
  const dlc::Plan& plan_;
  std::vector<py::str> names_;
  std::vector<py::dtype> dtypes_;
  std::vector<std::vector<py::ssize_t>> shapes_;
  std::vector<int> positions_;
  std::vector<py::str> output_names_;
  bool training_;
  std::vector<const void*> in_ptrs_;  // templates copied per call: calls may run concurrently
  std::vector<size_t> in_bytes_;
};

template <class PyPlanT>
void bind_call(py::module_& m) {
  py::class_<Call<PyPlanT>>(m, "Call")
      .def(py::init<py::object, std::vector<std::string>, std::vector<py::dtype>,
                    std::vector<std::vector<py::ssize_t>>, std::vector<int>, int, std::vector<std::string>, bool>(),
           py::arg("plan"), py::arg("names"), py::arg("dtypes"), py::arg("shapes"), py::arg("positions"),
           py::arg("plan_inputs"), py::arg("output_names"), py::arg("training"))
      .def("__call__", &Call<PyPlanT>::operator(), py::arg("inputs"), py::arg("seed"), py::arg("step"));
}

}  // namespace dlc_call
