#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace nodewarden::core {

// The outcome of an operation that can fail. Errors are values, never
// exceptions; the message says what failed and why, ready to be logged once by
// the caller ("write /etc/x: No space left on device").
class [[nodiscard]] Status final {
 public:
  enum class Code {
    kOk,
    kInvalidArgument,  // bad input: the caller must change something
    kNotFound,
    kFailedPrecondition,  // the machine is not in a state that allows this
    kTimeout,
    kCancelled,
    kInternal,  // an OS or library call failed
  };

  Status() = default;

  static Status ok() { return Status(); }
  static Status error(Code code, std::string message) { return Status(code, std::move(message)); }
  static Status invalidArgument(std::string message) {
    return Status(Code::kInvalidArgument, std::move(message));
  }
  static Status notFound(std::string message) {
    return Status(Code::kNotFound, std::move(message));
  }
  static Status failedPrecondition(std::string message) {
    return Status(Code::kFailedPrecondition, std::move(message));
  }
  static Status timeout(std::string message) { return Status(Code::kTimeout, std::move(message)); }
  static Status internal(std::string message) {
    return Status(Code::kInternal, std::move(message));
  }
  // "<what>: <strerror(errnum)>", errnum positive or negative (libsystemd style).
  static Status fromErrno(int errnum, const std::string& what);

  bool isOk() const { return code_ == Code::kOk; }
  explicit operator bool() const { return isOk(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // The same error with context in front: "load node.yaml: <message>".
  Status withContext(const std::string& context) const {
    if (isOk()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the error that prevented it.
template <typename T>
class [[nodiscard]] Result final {
 public:
  Result(T value) : value_(std::move(value)) {}
  Result(Status status) : value_(std::move(status)) {
    assert(!std::get<Status>(value_).isOk() && "Result built from an ok Status");
  }

  bool isOk() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return isOk(); }

  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(value_);
  }

  T& value() & {
    assert(isOk());
    return std::get<T>(value_);
  }
  const T& value() const& {
    assert(isOk());
    return std::get<T>(value_);
  }
  T&& value() && {
    assert(isOk());
    return std::get<T>(std::move(value_));
  }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace nodewarden::core
