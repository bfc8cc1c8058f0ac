#include "agent/systemd/bus_status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace nodewarden::systemd {
namespace {

using Code = core::Status::Code;

TEST(BusStatusTest, SystemdErrorNamesMapToCodesAndKeepTheirMessage) {
  const sd_bus_error error = SD_BUS_ERROR_MAKE_CONST("org.freedesktop.systemd1.NoSuchUnit",
                                                     "Unit kubelet.service not found.");
  core::Status status = busStatus("start kubelet.service", -EIO, &error);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(status.message(), "start kubelet.service: Unit kubelet.service not found.");

  const sd_bus_error masked =
      SD_BUS_ERROR_MAKE_CONST("org.freedesktop.systemd1.UnitMasked", "Unit x.service is masked.");
  EXPECT_EQ(busStatus("start x.service", -EIO, &masked).code(), Code::kFailedPrecondition);
}

TEST(BusStatusTest, OtherErrorsGoByTheirErrno) {
  const sd_bus_error enoent =
      SD_BUS_ERROR_MAKE_CONST("System.Error.ENOENT", "Unit file x.service does not exist.");
  core::Status status = busStatus("enable x.service", -ENOENT, &enoent);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(status.message(), "enable x.service: Unit file x.service does not exist.");

  const sd_bus_error invalid =
      SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_INVALID_ARGS, "Unit name foo is not valid.");
  EXPECT_EQ(busStatus("status foo", -EINVAL, &invalid).code(), Code::kInvalidArgument);

  const sd_bus_error denied = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_ACCESS_DENIED, "Access denied");
  EXPECT_EQ(busStatus("daemon-reload", -EACCES, &denied).code(), Code::kInternal);
}

TEST(BusStatusTest, WithoutAnErrorTheErrnoSpeaks) {
  const sd_bus_error none = SD_BUS_ERROR_NULL;
  core::Status status = busStatus("daemon-reload", -ETIMEDOUT, &none);
  EXPECT_EQ(status.code(), Code::kTimeout);
  EXPECT_EQ(status.message(), "daemon-reload: Connection timed out");
  EXPECT_EQ(busStatus("daemon-reload", -ENOTCONN, nullptr).message(),
            "daemon-reload: Transport endpoint is not connected");
}

}  // namespace
}  // namespace nodewarden::systemd
