#include "dispatch.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace dlc {
namespace {

// Function-local statics: registration runs from static initializers of other translation units, whose
// order is unspecified, so the table must be created on first use.
std::map<std::pair<std::string, Device>, KernelFn>& table() {
  static std::map<std::pair<std::string, Device>, KernelFn> t;
  return t;
}
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

}  // namespace

void register_kernel(const std::string& key, Device device, KernelFn fn) {
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[{key, device}] = fn;
}

KernelFn find_kernel(const std::string& key, Device device) {
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = table().find({key, device});
  if (it == table().end())
    throw std::invalid_argument("no kernel '" + key + "' for device " + device_name(device));
  return it->second;
}

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
