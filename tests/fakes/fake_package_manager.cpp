#include "tests/fakes/fake_package_manager.h"

#include <utility>

namespace nodewarden::packages {

void FakePackageManager::setInstalled(const std::string& name, const std::string& version) {
  database_[name].installed = version;
}

void FakePackageManager::setHeld(const std::string& name, bool held) {
  database_[name].held = held;
}

void FakePackageManager::setAvailable(const std::string& name, std::vector<std::string> versions) {
  PackageInfo& info = database_[name];
  info.available = std::move(versions);
  info.candidate.reset();
  if (!info.available.empty()) info.candidate = info.available.front();
}

size_t FakePackageManager::complete() {
  size_t completed = 0;
  while (!queued_.empty()) {
    std::function<void()> next = std::move(queued_.front());
    queued_.pop_front();
    ++completed;
    next();
  }
  return completed;
}

bool FakePackageManager::completeOne() {
  if (queued_.empty()) return false;
  std::function<void()> next = std::move(queued_.front());
  queued_.pop_front();
  next();
  return true;
}

void FakePackageManager::observe(const std::vector<PackageWant>& wants, ObserveCallback done) {
  observations_.push_back(wants);
  PackageSnapshot snapshot;
  for (const PackageWant& want : wants) {
    PackageInfo info = database_[want.name];
    info.queried = true;
    snapshot.packages[want.name] = std::move(info);
  }
  queued_.push_back([done = std::move(done), snapshot = std::move(snapshot)]() mutable {
    done(std::move(snapshot));
  });
}

void FakePackageManager::apply(const PackageTransaction& transaction, Done done) {
  transactions_.push_back(transaction);
  core::Status status = std::exchange(applyFailure_, core::Status::ok());
  if (status) {
    for (const auto& install : transaction.install) {
      PackageInfo& info = database_[install.name];
      info.installed = install.version.empty() ? info.candidate : install.version;
    }
    for (const std::string& name : transaction.remove) database_[name].installed.reset();
    for (const std::string& name : transaction.hold) database_[name].held = true;
    for (const std::string& name : transaction.unhold) database_[name].held = false;
  }
  queued_.push_back([done = std::move(done), status = std::move(status)] { done(status); });
}

}  // namespace nodewarden::packages
