#include "dispatch.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace dlc {
namespace {

// Function-local statics: registration runs from static initializers of other translation units, whose
// order is unspecified, so the table must be created on first use.
using Table = std::map<std::pair<std::string, Device>, KernelFn>;
Table& table() {
  static Table t;
  return t;
}
Table& prepack_table() {  // kernels' optional prepack functions
  static Table t;
  return t;
}
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

KernelFn lookup(const Table& t, const std::string& key, Device device) {
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = t.find({key, device});
  return it == t.end() ? nullptr : it->second;
}

}  // namespace

void register_kernel(const std::string& key, Device device, KernelFn fn) {
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[{key, device}] = fn;
}

KernelFn find_kernel(const std::string& key, Device device) {
  const KernelFn fn = lookup(table(), key, device);
  if (fn == nullptr) throw std::invalid_argument("no kernel '" + key + "' for device " + device_name(device));
  return fn;
}

void register_prepack(const std::string& key, Device device, KernelFn fn) {
  std::lock_guard<std::mutex> lock(table_mutex());
  prepack_table()[{key, device}] = fn;
}

KernelFn find_prepack(const std::string& key, Device device) { return lookup(prepack_table(), key, device); }

std::vector<std::string> kernel_keys(Device device) {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> keys;
  for (const auto& kv : table())
    if (kv.first.second == device) keys.push_back(kv.first.first);
  return keys;
}

void kernel_check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("kernel argument check failed: ") + what);
}

}  // namespace dlc
