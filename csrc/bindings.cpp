// pybind11 surface: the plan builder and executor, the dispatch table, threading. Individual kernels are not
// exposed; Python only ever runs whole plans, in one call, with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings_call.h"
#include "bindings_qgemm.h"
#include "dispatch.h"
#include "kernels/conv/nchwc.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "runtime/plan.h"
#include "runtime/thread_pool.h"

namespace py = pybind11;
using namespace dlc;

namespace {

// Keeps the persistent and constant arrays alive for as long as the plan may read or write them.
struct PyPlan {
  Plan plan;
  std::vector<py::array> persistent;
  std::vector<int> step_threads;  // of the latest profiled run
  PyPlan(int64_t arena_bytes, int device) : plan(arena_bytes, static_cast<Device>(device)) {}
};

void require_contiguous(const py::array& a, const std::string& what) {
  if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(what + " must be C-contiguous");
}

// Data-parallel runs: sample_offset and local_batch place this shard in the global batch (dropout masks);
// sum_across_ranks(values), when given, sums a float64 array over the ranks in place with the GIL held
// (synchronized batch norm), and shard_weight is the shard's share of the global batch.
py::list run_plan(PyPlan& self, const std::vector<py::array>& inputs, const std::vector<py::array>& outputs,
                  uint64_t seed, uint64_t step, bool training, bool profile, int64_t sample_offset,
                  int64_t local_batch, const py::object& sum_across_ranks, double shard_weight) {
  std::vector<const void*> in_ptrs;
  std::vector<size_t> in_bytes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    require_contiguous(inputs[i], "input " + std::to_string(i));
    in_ptrs.push_back(inputs[i].data());
    in_bytes.push_back(static_cast<size_t>(inputs[i].nbytes()));
  }
  std::vector<void*> out_ptrs;
  const auto& out_slots = self.plan.outputs();
  if (outputs.size() != out_slots.size()) throw std::invalid_argument("wrong number of output arrays");
  for (size_t j = 0; j < outputs.size(); ++j) {
    py::array o = outputs[j];
    require_contiguous(o, "output " + std::to_string(j));
    if (!o.writeable()) throw std::invalid_argument("output array is read-only");
    if (static_cast<size_t>(o.nbytes()) != self.plan.slots()[out_slots[j]].view.nbytes())
      throw std::invalid_argument("output " + std::to_string(j) + " has the wrong size");
    out_ptrs.push_back(o.mutable_data());
  }
  RunContext ctx;
  ctx.seed = seed;
  ctx.step = step;
  ctx.training = training;
  ctx.sample_offset = sample_offset;
  ctx.local_batch = local_batch;
  ctx.shard_weight = shard_weight;
  RankSum across;
  if (!sum_across_ranks.is_none()) {
    across = [&sum_across_ranks](double* values, int64_t n) {
      py::gil_scoped_acquire gil;
      py::capsule no_owner(values, [](void*) {});
      sum_across_ranks(py::array_t<double>({static_cast<py::ssize_t>(n)}, values, no_owner));
    };
    ctx.sum_across_ranks = &across;
  }
  std::vector<double> times;
  std::vector<int> threads;
  {
    py::gil_scoped_release release;
    self.plan.run(in_ptrs, in_bytes, out_ptrs, ctx, profile ? &times : nullptr, profile ? &threads : nullptr);
  }
  if (profile) self.step_threads = std::move(threads);
  py::list result;  // with profile: (start, seconds) per step, the start counted from the run's own start
  for (size_t k = 0; k + 1 < times.size(); k += 2) result.append(py::make_tuple(times[k], times[k + 1]));
  return result;
}

// Test hook: the GEMM on NumPy arrays, so tests can check edge sizes and the SIMD and scalar paths.
template <typename T>
py::array_t<T> gemm_np(py::array_t<T, py::array::c_style | py::array::forcecast> a,
                       py::array_t<T, py::array::c_style | py::array::forcecast> b, bool trans_a, bool trans_b) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("gemm expects 2-D arrays");
  int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  int64_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
  if (K != Kb) throw std::invalid_argument("gemm: inner dimensions differ");
  py::array_t<T> c({M, N});
  {
    py::gil_scoped_release release;
    gemm<T>(trans_a, trans_b, M, N, K, T(1), a.data(), a.shape(1), b.data(), b.shape(1), T(0),
            c.mutable_data(), N);
  }
  return c;
}

// The bf16 GEMM on NumPy arrays (tests and benchmarks): op(A) @ op(B) in bf16 arithmetic, f32 out; `packed`
// packs B first (as a plan's weight cache does) and reads the packed copy.
py::array_t<float> gemm_bf16_np(py::array_t<float, py::array::c_style | py::array::forcecast> a,
                                py::array_t<float, py::array::c_style | py::array::forcecast> b, bool trans_b,
                                bool packed) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("gemm_bf16 expects 2-D arrays");
  const int64_t M = a.shape(0), K = a.shape(1), N = trans_b ? b.shape(0) : b.shape(1);
  if ((trans_b ? b.shape(1) : b.shape(0)) != K) throw std::invalid_argument("gemm_bf16: inner dimensions differ");
  py::array_t<float> c({M, N});
  {
    py::gil_scoped_release release;
    Bf16PackedB pb;
    if (packed) pb = gemm_bf16_pack_b(trans_b, K, N, b.data(), b.shape(1));
    gemm_bf16(trans_b, M, N, K, a.data(), K, b.data(), b.shape(1), c.mutable_data(), N, nullptr, nullptr,
              packed ? &pb : nullptr);
  }
  return c;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dlc C++ runtime: plan executor and kernel dispatch";

  py::class_<PyPlan>(m, "Plan")
      .def(py::init<int64_t, int>(), py::arg("arena_bytes"), py::arg("device") = 0)
      .def("add_slot",
           [](PyPlan& p, int region, int64_t where, int dtype, const std::vector<int64_t>& shape) {
             return p.plan.add_slot(static_cast<Region>(region), where, static_cast<DType>(dtype), shape);
           })
      .def("add_const",
           [](PyPlan& p, py::array a) {
             require_contiguous(a, "constant");
             return p.plan.add_const(a.data(), static_cast<size_t>(a.nbytes()));
           })
      .def("set_persistent",
           [](PyPlan& p, std::vector<py::array> arrays) {
             std::vector<void*> ptrs;
             std::vector<size_t> bytes;
             for (auto& a : arrays) {
               require_contiguous(a, "persistent buffer");
               ptrs.push_back(a.mutable_data());
               bytes.push_back(static_cast<size_t>(a.nbytes()));
             }
             p.persistent = std::move(arrays);
             p.plan.set_persistent(ptrs, bytes);
           })
      .def("add_step",
           [](PyPlan& p, const std::string& key, const std::string& label, std::vector<int32_t> in,
              std::vector<int32_t> out, std::vector<int64_t> ints, std::vector<double> floats,
              int64_t workspace_offset) {
             p.plan.add_step(key, label, std::move(in), std::move(out), std::move(ints), std::move(floats),
                             workspace_offset);
           })
      .def("set_outputs", [](PyPlan& p, std::vector<int32_t> s) { p.plan.set_outputs(std::move(s)); })
      .def("set_output_home",
           [](PyPlan& p, int32_t j, std::vector<int32_t> s) { p.plan.set_output_home(j, std::move(s)); })
      .def("set_step_writes",
           [](PyPlan& p, int32_t k, std::vector<int32_t> s) { p.plan.set_step_writes(k, std::move(s)); })
      .def("set_num_inputs", [](PyPlan& p, int n) { p.plan.set_num_inputs(n); })
      .def("run", &run_plan, py::arg("inputs"), py::arg("outputs"), py::arg("seed") = 0, py::arg("step") = 0,
           py::arg("training") = false, py::arg("profile") = false, py::arg("sample_offset") = 0,
           py::arg("local_batch") = 0, py::arg("sum_across_ranks") = py::none(), py::arg("shard_weight") = 1.0)
      .def_property_readonly("arena_bytes", [](PyPlan& p) { return p.plan.arena_bytes(); })
      .def_property_readonly("num_steps", [](PyPlan& p) { return p.plan.steps().size(); })
      // The most threads each step's loops ran on in the latest run with profile=True.
      .def_property_readonly("step_threads", [](PyPlan& p) { return p.step_threads; })
      .def("set_param_versions", [](PyPlan& p, std::shared_ptr<ParamVersions> v) { p.plan.set_param_versions(v); })
      .def("set_weight_packing", [](PyPlan& p, bool on) { p.plan.set_weight_packing(on); })
      .def("prepack", [](PyPlan& p) {
        py::gil_scoped_release release;
        p.plan.prepack();
      })
      .def_property_readonly("packed_bytes", [](PyPlan& p) { return p.plan.packed_bytes(); })
      .def_property_readonly("pack_count", [](PyPlan& p) { return p.plan.pack_count(); })
      .def_property_readonly("packed_step_bytes", [](PyPlan& p) { return p.plan.packed_step_bytes(); })
      .def_property_readonly("cost_ns", [](PyPlan& p) { return p.plan.cost_ns(); })
      .def_property_readonly("runs_inline", [](PyPlan& p) { return p.plan.runs_inline(); });

  dlc_call::bind_call<PyPlan>(m);  // the repeated inference call (bindings_call.h)

  // Versions of a program's persistent buffers, shared by its plans (runtime/packed_weights.h).
  py::class_<ParamVersions, std::shared_ptr<ParamVersions>>(m, "ParamVersions", py::module_local())
      .def(py::init<size_t>(), py::arg("n"))
      .def("__len__", &ParamVersions::size)
      .def("version", &ParamVersions::get)
      .def("advance", [](ParamVersions& v, size_t i) {
        if (i >= v.size()) throw py::index_error("no persistent buffer " + std::to_string(i));
        v.advance(i);
      })
      .def("advance_all", &ParamVersions::advance_all);

  m.def("kernel_keys", [](int device) { return kernel_keys(static_cast<Device>(device)); },
        py::arg("device") = 0);
  m.def("ew_opcode_names", &ew_opcode_names);
  m.def("ew_opcode_arities", &ew_opcode_arities);
  m.def("ew_force_isa", &ew_force_isa);
  m.def("ew_kernel_name", &ew_kernel_name);
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_work_per_thread_scale", &set_work_per_thread_scale);
  m.def("set_inline_plan_ns", &set_inline_plan_ns);
  m.def("gemm_f32", &gemm_np<float>, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false);
  m.def("gemm_f64", &gemm_np<double>, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false);
  m.def("gemm_force_scalar", &gemm_force_scalar);
  m.def("gemm_force_isa", &gemm_force_isa);
  m.def("nchwc_force_isa", &conv::nchwc_force_isa);
  m.def("nchwc_isa", &conv::nchwc_isa);
  m.def("nchwc_block_size", &conv::nchwc_block_size);
  m.def("gemm_force_small_m", &gemm_force_small_m);
  m.def("gemm_epilogue_force_form", &gemm_epilogue_force_form);
  m.def("gemm_kernel_name", &gemm_kernel_name);
  m.def("gemm_last_team_size", &gemm_last_team_size);
  m.def("gemm_last_epilogue_form", &gemm_last_epilogue_form);
  bind_qgemm(m);
  m.def("gemm_bf16", &gemm_bf16_np, py::arg("a"), py::arg("b"), py::arg("trans_b") = false,
        py::arg("packed") = false);
  m.def("gemm_bf16_force_isa", &gemm_bf16_force_isa);
  m.def("gemm_bf16_kernel_name", &gemm_bf16_kernel_name);
  m.def("cpu_has_avx512_bf16", &cpu_has_avx512_bf16);
}
