#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/packages/package_manager.h"

namespace nodewarden::packages {

// A PackageManager for unit tests: an in-memory package database and archive.
// observe() answers from them; apply() records the transaction and, unless
// told to fail, changes the database as apt would. Like the real ones it
// never finishes inside the call: complete() delivers, in order.
//
//   FakePackageManager packages;
//   packages.setInstalled("containerd", "1.6.20-1");
//   packages.setAvailable("containerd", {"1.7.0-1", "1.6.20-1"});
class FakePackageManager final : public PackageManager {
 public:
  void setInstalled(const std::string& name, const std::string& version);
  void setHeld(const std::string& name, bool held);
  // Versions the archive offers, newest first; the first is the candidate.
  void setAvailable(const std::string& name, std::vector<std::string> versions);
  // The next apply() fails with `status` and changes nothing.
  void failNextApply(core::Status status) { applyFailure_ = std::move(status); }
  // Another process holds the package database: lockHolder() says who.
  void setLockHolder(std::optional<std::string> holder) { lockHolder_ = std::move(holder); }

  // Every transaction apply() was given, in order.
  const std::vector<PackageTransaction>& transactions() const { return transactions_; }
  // The wants of every observe(), in order.
  const std::vector<std::vector<PackageWant>>& observations() const { return observations_; }
  const PackageInfo& package(const std::string& name) { return database_[name]; }

  size_t pending() const { return queued_.size(); }
  // Delivers queued results, including those queued meanwhile; returns how many.
  size_t complete();
  // Delivers the oldest queued result only; returns whether there was one.
  bool completeOne();

  std::string_view name() const override { return "fake"; }
  void observe(const std::vector<PackageWant>& wants, ObserveCallback done) override;
  bool versionMatches(std::string_view version, std::string_view installed) const override {
    return version == installed;
  }
  void apply(const PackageTransaction& transaction, Done done) override;
  std::optional<std::string> lockHolder() const override { return lockHolder_; }

 private:
  std::map<std::string, PackageInfo> database_;  // installed, held, available, candidate
  std::vector<PackageTransaction> transactions_;
  std::vector<std::vector<PackageWant>> observations_;
  core::Status applyFailure_;
  std::optional<std::string> lockHolder_;
  std::deque<std::function<void()>> queued_;
};

}  // namespace nodewarden::packages
