// kOutOfRange's message: how a value outside a loss's domain reaches the
// user, by ms_bce_last_error() (ctypes callers) or an exception (MindSpore's
// CPU launcher).  Host-only C++17.
#ifndef MS_BCE_COMMON_ERRORS_H_
#define MS_BCE_COMMON_ERRORS_H_

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aot_abi.h"

namespace ms_bce {

// The message of the last kOutOfRange of this thread (the thread that called
// the entry point), for ms_bce_last_error().
inline std::string &last_error() {
  static thread_local std::string message;
  return message;
}

// kOutOfRange with its message: "For '<op>', every element of '<arg>' must be
// in [0, 1], but got <value> at index <flat index>." (value: the shortest
// float32 text that reads back as it).
inline int out_of_range(const char *op, const char *arg, float value, int64_t index) {
  char text[32];
  const auto res = std::to_chars(text, text + sizeof(text), value);
  last_error() = std::string("For '") + op + "', every element of '" + arg + "' must be in [0, 1], but got " +
                 std::string(text, res.ptr) + " at index " + std::to_string(index) + ".";
  return kOutOfRange;
}

// The status an entry point returns.  A value outside the domain is the
// user's error, whose message must reach them: MindSpore's CPU kernel
// launcher (the only caller that passes a non-null `extra`, its AotExtra)
// calls the kernel inside try/catch(std::exception) and raises a Python
// RuntimeError that carries what(); a bare status would show only "Return
// value ... is 10".  Every other caller (ctypes: extra is nullptr) gets the
// status, the message in ms_bce_last_error(), and no exception.
inline int report(int status, void *extra) {
  if (status == kOutOfRange && extra != nullptr) throw std::runtime_error(last_error());
  return status;
}

}  // namespace ms_bce

#endif  // MS_BCE_COMMON_ERRORS_H_
