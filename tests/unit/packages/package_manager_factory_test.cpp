#include "agent/packages/package_manager_factory.h"

#include <gtest/gtest.h>

#include "agent/core/simulated_clock.h"
#include "tests/fakes/fake_process_runner.h"
#include "tests/unit/packages/package_backend_test_support.h"

namespace nodewarden::packages {
namespace {

class PackageManagerFactoryTest : public ::testing::Test {
 protected:
  std::unique_ptr<PackageManager> detect() {
    return detectPackageManager(runner_, clock_, {.root = root_.path()});
  }
  test::TemporaryRoot root_;
  core::FakeProcessRunner runner_;
  core::SimulatedClock clock_;
};

TEST_F(PackageManagerFactoryTest, ChoosesAptWhereDpkgAndAptAre) {
  root_.write("/var/lib/dpkg/status", "");
  root_.write("/usr/bin/apt-get", "", true);
  root_.write("/usr/bin/rpm", "", true);
  std::unique_ptr<PackageManager> manager = detect();
  ASSERT_TRUE(manager);
  EXPECT_EQ(manager->name(), "apt");
}

TEST_F(PackageManagerFactoryTest, ChoosesDnfWhereRpmAndDnfAre) {
  root_.write("/usr/bin/rpm", "", true);
  root_.write("/usr/bin/dnf", "", true);
  root_.write("/usr/bin/dnf-3", "", true);
  root_.write("/usr/bin/apt-get", "", true);  // without dpkg's database, not a Debian node
  std::unique_ptr<PackageManager> manager = detect();
  ASSERT_TRUE(manager);
  EXPECT_EQ(manager->name(), "dnf");
}

TEST_F(PackageManagerFactoryTest, NoneWithoutEither) {
  root_.write("/usr/bin/rpm", "", true);
  EXPECT_FALSE(detect());
}

}  // namespace
}  // namespace nodewarden::packages
