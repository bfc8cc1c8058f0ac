#include "agent/state/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "nodewarden/v1/state.pb.h"
#include "tests/unit/state/state_test_support.h"

namespace nodewarden::state {
namespace {

using test::errorsOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string filesWithPath(std::string_view path) {
  return "files:\n  - path: \"" + std::string(path) + "\"\n";
}

TEST(ValidateTest, PathsMustBeAbsoluteAndNormalized) {
  EXPECT_THAT(errorsOf(filesWithPath("etc/a")),
              ElementsAre("node.yaml:4:11: files[0].path: etc/a is not an absolute path"));
  EXPECT_THAT(errorsOf(filesWithPath("/etc/../a")),
              ElementsAre("node.yaml:4:11: files[0].path: /etc/../a contains a .. component"));
  EXPECT_THAT(errorsOf(filesWithPath("/etc/./a")),
              ElementsAre("node.yaml:4:11: files[0].path: /etc/./a is not normalized; write "
                          "/etc/a"));
  EXPECT_THAT(errorsOf(filesWithPath("/etc//a")),
              ElementsAre("node.yaml:4:11: files[0].path: /etc//a is not normalized; write "
                          "/etc/a"));
  EXPECT_THAT(errorsOf(filesWithPath("/etc/a/")),
              ElementsAre("node.yaml:4:11: files[0].path: /etc/a/ is not normalized; write "
                          "/etc/a"));
  EXPECT_THAT(errorsOf(filesWithPath("/")),
              ElementsAre("node.yaml:4:11: files[0].path: / is the root directory, which is not "
                          "managed"));
  EXPECT_THAT(errorsOf(filesWithPath("/a\\0b")),
              ElementsAre("node.yaml:4:11: files[0].path: the path contains a NUL byte"));
  EXPECT_THAT(errorsOf(filesWithPath("/" + std::string(256, 'a'))),
              ElementsAre(::testing::HasSubstr("has a component longer than 255 bytes")));
  EXPECT_THAT(errorsOf(filesWithPath("/etc/a.d/..b")), IsEmpty());
}

TEST(ValidateTest, MissingPathPointsAtTheEntry) {
  EXPECT_THAT(errorsOf("directories:\n  - mode: \"0755\"\n"),
              ElementsAre("node.yaml:4:5: directories[0].path: required"));
}

TEST(ValidateTest, UnitNamesFollowSystemd) {
  auto unitNamed = [](std::string_view name) {
    return errorsOf("units:\n  - name: \"" + std::string(name) + "\"\n");
  };
  for (std::string_view good :
       {"containerd.service", "getty@tty1.service", "getty@.service", "var-lib.mount",
        "a:b_c-d\\x2d.timer", "x@a@b.service", "k.socket", "t.target", "p.path", "s.slice"}) {
    EXPECT_THAT(unitNamed(good), IsEmpty()) << good;
  }
  EXPECT_THAT(unitNamed("containerd"),
              ElementsAre("node.yaml:4:11: units[0].name: containerd does not end in a unit "
                          "type (.service, .socket, .target, .timer, .path, .mount, .automount, "
                          ".swap, .slice)"));
  EXPECT_THAT(unitNamed("dev-sda.device"),
              ElementsAre(::testing::HasSubstr("does not end in a unit type")));
  EXPECT_THAT(unitNamed(".service"),
              ElementsAre("node.yaml:4:11: units[0].name: .service has an empty name before its "
                          "type"));
  EXPECT_THAT(unitNamed("@x.service"),
              ElementsAre(::testing::HasSubstr("has an empty name before its type")));
  EXPECT_THAT(unitNamed("my unit.service"),
              ElementsAre("node.yaml:4:11: units[0].name: my unit.service contains ' ', not "
                          "allowed in unit names"));
  EXPECT_THAT(unitNamed("a@b/c.service"),
              ElementsAre("node.yaml:4:11: units[0].name: a@b/c.service contains '/', not "
                          "allowed in unit instance names"));
  EXPECT_THAT(unitNamed(std::string(248, 'a') + ".service"),
              ElementsAre("node.yaml:4:11: units[0].name: unit names are at most 255 "
                          "characters"));
  EXPECT_THAT(unitNamed(std::string(247, 'a') + ".service"), IsEmpty());
}

TEST(ValidateTest, DropInDirectoryNameFitsInNameMax) {
  auto withDropIn = [](size_t stemLength) {
    return errorsOf("units:\n  - name: " + std::string(stemLength, 'a') +
                    ".service\n    dropIns:\n      - {name: a.conf}\n");
  };
  EXPECT_THAT(withDropIn(245), IsEmpty());
  EXPECT_THAT(withDropIn(246),
              ElementsAre("node.yaml:6:7: units[0].dropIns: the drop-in directory " +
                          std::string(246, 'a') +
                          ".service.d is longer than 255 bytes; units with drop-ins have names of "
                          "at most 253 characters"));
}

TEST(ValidateTest, TemplatesCannotBeStartedOrStopped) {
  EXPECT_THAT(errorsOf("units:\n  - name: getty@.service\n    state: running\n"),
              ElementsAre("node.yaml:5:12: units[0].state: getty@.service is a template; only "
                          "its instances (name@instance) can be started or stopped"));
}

TEST(ValidateTest, DropInNamesEndInConfAndStayInTheirDirectory) {
  auto dropInNamed = [](std::string_view name) {
    return errorsOf("units:\n  - name: a.service\n    dropIns:\n      - name: \"" +
                    std::string(name) + "\"\n        content: \"\"\n");
  };
  EXPECT_THAT(dropInNamed("10-limits.conf"), IsEmpty());
  EXPECT_THAT(dropInNamed("10-limits"),
              ElementsAre("node.yaml:6:15: units[0].dropIns[0].name: 10-limits does not end in "
                          ".conf; systemd reads only *.conf drop-ins"));
  EXPECT_THAT(dropInNamed(".conf"), ElementsAre(::testing::HasSubstr("does not end in .conf")));
  EXPECT_THAT(dropInNamed("../x.conf"),
              ElementsAre("node.yaml:6:15: units[0].dropIns[0].name: ../x.conf contains /; name "
                          "a file in <unit>.d/"));
  EXPECT_THAT(dropInNamed(".hidden.conf"),
              ElementsAre("node.yaml:6:15: units[0].dropIns[0].name: .hidden.conf starts with a "
                          "dot; systemd ignores hidden drop-ins"));
  EXPECT_THAT(errorsOf("units:\n  - name: a.service\n    dropIns:\n      - content: x\n"),
              ElementsAre("node.yaml:6:9: units[0].dropIns[0].name: required"));
}

TEST(ValidateTest, DuplicatesNameWhereTheFirstOneIs) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /etc/x\n"
                       "files:\n"
                       "  - path: /etc/y\n"
                       "  - path: /etc/y\n"
                       "  - path: /etc/x\n"
                       "units:\n"
                       "  - name: a.service\n"
                       "    dropIns:\n"
                       "      - {name: a.conf}\n"
                       "      - {name: a.conf}\n"
                       "  - name: a.service\n"),
              ElementsAre("node.yaml:7:11: files[1].path: /etc/y is already declared at "
                          "node.yaml:6:11",
                          "node.yaml:8:11: files[2].path: /etc/x is already declared as a "
                          "directory at node.yaml:4:11",
                          "node.yaml:13:16: units[0].dropIns[1].name: a.conf is already declared "
                          "at node.yaml:12:16",
                          "node.yaml:14:11: units[1].name: a.service is already declared at "
                          "node.yaml:10:11"));
}

TEST(ValidateTest, DuplicateDirectoryAfterFileNamesTheFileFirst) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /etc/x\n"
                       "directories:\n"
                       "  - path: /etc/x\n"),
              ElementsAre("node.yaml:6:11: directories[0].path: /etc/x is already declared as a "
                          "file at node.yaml:4:11"));
}

TEST(ValidateTest, NothingInsideAFileOrAnAbsentDirectory) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /opt/gone\n"
                       "    ensure: absent\n"
                       "files:\n"
                       "  - path: /etc/x\n"
                       "  - path: /etc/x/y\n"
                       "  - path: /opt/gone/a\n"
                       "  - path: /opt/gone/b\n"
                       "    ensure: absent\n"),
              ElementsAre("node.yaml:8:11: files[1].path: /etc/x/y is inside /etc/x, which is "
                          "declared as a file at node.yaml:7:11",
                          "node.yaml:9:11: files[2].path: /opt/gone/a is inside /opt/gone, "
                          "which is declared absent at node.yaml:4:11"));
}

// A unit's content and drop-ins are files under /etc/systemd/system: declared
// again under files: or directories:, the two would overwrite each other on
// every run.
TEST(ValidateTest, UnitFilesAndDropInsAreDeclaredPaths) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /etc/systemd/system/app.service\n"
                       "  - path: /etc/systemd/system/app.service.d/10-x.conf\n"
                       "units:\n"
                       "  - name: app.service\n"
                       "    content: \"[Service]\\n\"\n"
                       "    dropIns:\n"
                       "      - name: 10-x.conf\n"
                       "        content: \"\"\n"),
              ElementsAre("node.yaml:8:14: units[0].content: the unit file "
                          "/etc/systemd/system/app.service is already declared as a file at "
                          "node.yaml:4:11",
                          "node.yaml:10:15: units[0].dropIns[0].name: the drop-in "
                          "/etc/systemd/system/app.service.d/10-x.conf is already declared as a "
                          "file at node.yaml:5:11"));
}

TEST(ValidateTest, FileAfterAUnitNamesTheUnitField) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: app.service\n"
                       "    content: x\n"
                       "    dropIns:\n"
                       "      - {name: 10-x.conf}\n"
                       "files:\n"
                       "  - path: /etc/systemd/system/app.service\n"
                       "    ensure: absent\n"
                       "directories:\n"
                       "  - path: /etc/systemd/system/app.service.d/10-x.conf\n"),
              ElementsAre("node.yaml:9:11: files[0].path: /etc/systemd/system/app.service is "
                          "already declared as the unit file of app.service at node.yaml:5:14 "
                          "(units[0].content)",
                          "node.yaml:12:11: directories[0].path: "
                          "/etc/systemd/system/app.service.d/10-x.conf is already declared as a "
                          "drop-in of app.service at node.yaml:7:16 (units[0].dropIns[0].name)"));
}

TEST(ValidateTest, NothingInsideAUnitFileNorDropInsInAFile) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: app.service\n"
                       "    content: x\n"
                       "  - name: b.service\n"
                       "    dropIns:\n"
                       "      - {name: 10-x.conf}\n"
                       "files:\n"
                       "  - path: /etc/systemd/system/app.service/x\n"
                       "  - path: /etc/systemd/system/b.service.d\n"),
              ElementsAre("node.yaml:8:16: units[1].dropIns[0].name: the drop-in "
                          "/etc/systemd/system/b.service.d/10-x.conf is inside "
                          "/etc/systemd/system/b.service.d, which is declared as a file at "
                          "node.yaml:11:11",
                          "node.yaml:10:11: files[0].path: /etc/systemd/system/app.service/x is "
                          "inside /etc/systemd/system/app.service, which is declared as the unit "
                          "file of app.service at node.yaml:5:14 (units[0].content)"));
}

TEST(ValidateTest, DropInsInsideAnAbsentDirectory) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /etc/systemd/system/app.service.d\n"
                       "    ensure: absent\n"
                       "units:\n"
                       "  - name: app.service\n"
                       "    dropIns:\n"
                       "      - {name: 10-x.conf}\n"),
              ElementsAre("node.yaml:9:16: units[0].dropIns[0].name: the drop-in "
                          "/etc/systemd/system/app.service.d/10-x.conf is inside "
                          "/etc/systemd/system/app.service.d, which is declared absent at "
                          "node.yaml:4:11"));
}

TEST(ValidateTest, UnitsShareTheirDirectoriesWithOtherFiles) {
  // The drop-in directory itself, other files in it, and the unit file of a
  // unit that only has drop-ins (its file comes from a package, or from files:).
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /etc/systemd/system/app.service.d\n"
                       "    mode: \"0755\"\n"
                       "files:\n"
                       "  - path: /etc/systemd/system/app.service.d/20-other.conf\n"
                       "  - path: /etc/systemd/system/app.service\n"
                       "  - path: /etc/systemd/system/b.service\n"
                       "units:\n"
                       "  - name: app.service\n"
                       "    dropIns:\n"
                       "      - {name: 10-x.conf}\n"
                       "  - name: b.service\n"
                       "    content: x\n"
                       "    restartOn: [/etc/systemd/system/app.service.d/20-other.conf]\n"),
              ElementsAre("node.yaml:15:14: units[1].content: the unit file "
                          "/etc/systemd/system/b.service is already declared as a file at "
                          "node.yaml:9:11"));
}

// Names already in error declare nothing more: one problem, one report.
TEST(ValidateTest, InvalidOrRepeatedUnitNamesDeclareNoPaths) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: app.service\n"
                       "    content: x\n"
                       "    dropIns:\n"
                       "      - {name: a.conf}\n"
                       "      - {name: a.conf}\n"
                       "  - name: app.service\n"
                       "    content: x\n"
                       "  - name: app\n"
                       "    content: x\n"),
              ElementsAre("node.yaml:8:16: units[0].dropIns[1].name: a.conf is already declared "
                          "at node.yaml:7:16",
                          "node.yaml:9:11: units[1].name: app.service is already declared at "
                          "node.yaml:4:11",
                          "node.yaml:11:11: units[2].name: app does not end in a unit type "
                          "(.service, .socket, .target, .timer, .path, .mount, .automount, "
                          ".swap, .slice)"));
}

TEST(ValidateTest, RestartOnMustNameADeclaredFile) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /etc/d\n"
                       "files:\n"
                       "  - path: /etc/a\n"
                       "units:\n"
                       "  - name: a.service\n"
                       "    restartOn:\n"
                       "      - /etc/a\n"
                       "      - /etc/b\n"
                       "      - /etc/d\n"
                       "      - /etc/a/\n"),
              ElementsAre("node.yaml:11:9: units[0].restartOn[1]: /etc/b is not a file, "
                          "artifact, unit file or drop-in declared in this state",
                          "node.yaml:12:9: units[0].restartOn[2]: /etc/d is not a file, "
                          "artifact, unit file or drop-in declared in this state",
                          "node.yaml:13:9: units[0].restartOn[3]: /etc/a/ is not normalized; "
                          "write /etc/a"));
}

TEST(ValidateTest, Base64MustBeValid) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /a\n"
                       "    contentBase64: \"aGVs!G8=\"\n"
                       "  - path: /b\n"
                       "    contentBase64: |\n"
                       "      aGVs\n"
                       "      bG8=\n"),
              ElementsAre("node.yaml:5:20: files[0].contentBase64: invalid base64 at offset 4"));
}

TEST(ValidateTest, InlineContentIsLimitedToOneMebibyte) {
  const std::string justFits(kMaxContentBytes, 'a');
  const std::string tooBig(kMaxContentBytes + 1, 'a');
  EXPECT_THAT(errorsOf("files:\n  - path: /a\n    content: " + justFits + "\n"), IsEmpty());
  EXPECT_THAT(errorsOf("files:\n  - path: /a\n    content: " + tooBig + "\n"),
              ElementsAre("node.yaml:5:14: files[0].content: inline content is limited to 1 MiB "
                          "(1048576 bytes); this is 1048577 bytes"));
  EXPECT_THAT(errorsOf("units:\n  - name: a.service\n    content: " + tooBig +
                       "\n    dropIns:\n      - name: a.conf\n        content: " + tooBig + "\n"),
              ElementsAre("node.yaml:5:14: units[0].content: inline content is limited to 1 MiB "
                          "(1048576 bytes); this is 1048577 bytes",
                          "node.yaml:8:18: units[0].dropIns[0].content: inline content is limited "
                          "to 1 MiB (1048576 bytes); this is 1048577 bytes"));
}

TEST(ValidateTest, DecodedBase64IsLimitedToOneMebibyte) {
  // 786432 groups of "AAAA" decode to 3 bytes each: 2359296 bytes.
  std::string encoded;
  for (int i = 0; i < 786432; ++i) encoded += "AAAA";
  EXPECT_THAT(errorsOf("files:\n  - path: /a\n    contentBase64: " + encoded + "\n"),
              ElementsAre("node.yaml:5:20: files[0].contentBase64: decoded inline content is "
                          "limited to 1 MiB (1048576 bytes); this is 2359296 bytes"));
}

TEST(ValidateTest, OwnersAndGroupsAreNamesOrIds) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - {path: /a, owner: root, group: \"0\"}\n"
                       "  - {path: /b, owner: _apt, group: systemd-journal}\n"
                       "  - {path: /c, owner: \"DOMAIN$\", group: 4294967294}\n"),
              IsEmpty());
  EXPECT_THAT(errorsOf("files:\n"
                       "  - {path: /a, owner: \"bad name\"}\n"
                       "  - {path: /b, owner: -root}\n"
                       "  - {path: /c, group: 4294967295}\n"
                       "  - {path: /d, group: 1abc}\n"),
              ElementsAre("node.yaml:4:23: files[0].owner: bad name is not a valid user name or "
                          "numeric id",
                          "node.yaml:5:23: files[1].owner: -root is not a valid user name or "
                          "numeric id",
                          "node.yaml:6:23: files[2].group: 4294967295 is not a valid numeric id "
                          "(at most 4294967294)",
                          "node.yaml:7:23: files[3].group: 1abc is not a valid group name or "
                          "numeric id"));
}

TEST(ValidateTest, AbsentResourcesCarryNothingElse) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /a\n"
                       "    ensure: absent\n"
                       "    content: x\n"
                       "    mode: \"0644\"\n"),
              ElementsAre("node.yaml:6:14: files[0].content: has no effect with ensure: absent",
                          "node.yaml:7:11: files[0].mode: has no effect with ensure: absent"));
}

TEST(ValidateTest, PackagesHaveValidUniqueNames) {
  EXPECT_THAT(errorsOf("packages:\n"
                       "  - name: containerd\n"
                       "  - name: containerd\n"
                       "  - name: \"bad name\"\n"
                       "  - name: -dash\n"
                       "  - ensure: present\n"
                       "  - name: libstdc++6\n"
                       "  - name: kubernetes-cni_1.2.0\n"
                       "  - name: " +
                       std::string(256, 'a') + "\n"),
              ElementsAre("node.yaml:5:11: packages[1].name: containerd is already declared at "
                          "node.yaml:4:11",
                          "node.yaml:6:11: packages[2].name: bad name contains ' ', not allowed "
                          "in package names",
                          "node.yaml:7:11: packages[3].name: -dash does not start with a letter "
                          "or digit",
                          "node.yaml:8:5: packages[4].name: required",
                          "node.yaml:11:11: packages[7].name: package names are at most 255 "
                          "characters"));
}

TEST(ValidateTest, PackageVersionsGoWithEnsurePresent) {
  EXPECT_THAT(errorsOf("packages:\n"
                       "  - {name: a, version: \"1.6.20~ds1-1+b1\"}\n"
                       "  - {name: b, version: \"2:1.6.20-3.el9\", ensure: present, hold: true}\n"
                       "  - {name: c, version: \"1.0\", ensure: latest}\n"
                       "  - {name: d, version: \"1.0\", ensure: absent}\n"
                       "  - {name: e, version: \"1.0 beta\"}\n"
                       "  - {name: f, ensure: absent, hold: true}\n"
                       "  - {name: g, ensure: absent, hold: false}\n"),
              ElementsAre("node.yaml:6:24: packages[2].version: has no effect with ensure: "
                          "latest, which installs the archive's newest; leave ensure out to "
                          "install this version",
                          "node.yaml:7:24: packages[3].version: has no effect with ensure: absent",
                          "node.yaml:8:24: packages[4].version: 1.0 beta contains ' ', not "
                          "allowed in versions",
                          "node.yaml:9:37: packages[5].hold: a package to remove cannot be held; "
                          "leave hold out"));
}

TEST(ValidateTest, TheAgentDoesNotManageItsOwnPackage) {
  for (std::string_view ensure : {"present", "latest", "absent"}) {
    EXPECT_THAT(
        errorsOf("packages:\n  - {name: nodewarden-agent, ensure: " + std::string(ensure) + "}\n"),
        ElementsAre("node.yaml:4:12: packages[0].name: the agent does not manage its own "
                    "package; upgrade nodewarden-agent with apt or dnf from outside the "
                    "agent (see Upgrading in docs/operations.md)"))
        << ensure;
  }
  EXPECT_THAT(errorsOf("packages:\n  - {name: nodewarden-server}\n"), IsEmpty());
}

constexpr std::string_view kDigest =
    "109bd2607b054a477ede31c55ae814eae8e75543126dc4cea40b04424d843489";

TEST(ValidateTest, ArtifactsComeOverHttpsWithTheirDigest) {
  EXPECT_THAT(errorsOf("artifacts:\n"
                       "  - path: /usr/local/bin/kubelet\n"
                       "    url: https://dl.k8s.io/release/v1.33.4/bin/linux/amd64/kubelet\n"
                       "    sha256: " +
                       std::string(kDigest) +
                       "\n"
                       "    mode: \"0755\"\n"
                       "    caFile: /etc/ssl/mirror.pem\n"
                       "    maxSize: 200000000\n"
                       "    owner: root\n"),
              IsEmpty());
  EXPECT_THAT(errorsOf("artifacts:\n"
                       "  - path: usr/local/bin/x\n"
                       "    url: http://mirror.example/x\n"
                       "    sha256: " +
                       std::string(kDigest.size() - 1, 'a') +
                       "\n"
                       "  - path: /opt/y\n"
                       "    url: ftp://mirror.example/y\n"
                       "    sha256: " +
                       std::string(kDigest.size(), 'A') +
                       "\n"
                       "    caFile: etc/ca.pem\n"
                       "    maxSize: 0\n"
                       "    owner: \"bad name\"\n"
                       "  - path: /opt/z\n"
                       "  - path: /opt/w\n"
                       "    url: \"https:///w\"\n"
                       "    sha256: " +
                       std::string(kDigest.size() - 1, 'a') +
                       "g\n"
                       "  - path: /opt/v\n"
                       "    url: mirror.example/v\n"
                       "    sha256: " +
                       std::string(kDigest) + "\n"),
              ElementsAre("node.yaml:4:11: artifacts[0].path: usr/local/bin/x is not an absolute "
                          "path",
                          "node.yaml:5:10: artifacts[0].url: http://mirror.example/x is not an "
                          "https:// URL; artifacts are fetched only over HTTPS (write https://, "
                          "or serve it over HTTPS)",
                          "node.yaml:6:13: artifacts[0].sha256: a sha256 is 64 hex digits, got 63",
                          "node.yaml:8:10: artifacts[1].url: ftp://mirror.example/y is not an "
                          "https:// URL; artifacts are fetched only over HTTPS",
                          "node.yaml:9:13: artifacts[1].sha256: write the sha256 in lowercase "
                          "hex digits",
                          "node.yaml:10:13: artifacts[1].caFile: etc/ca.pem is not an absolute "
                          "path",
                          "node.yaml:11:14: artifacts[1].maxSize: must be greater than 0; leave "
                          "it out for the default of 1 GiB",
                          "node.yaml:12:12: artifacts[1].owner: bad name is not a valid user name "
                          "or numeric id",
                          "node.yaml:13:5: artifacts[2].url: required",
                          "node.yaml:13:5: artifacts[2].sha256: required; the agent installs only "
                          "what matches it",
                          "node.yaml:15:10: artifacts[3].url: https:///w has no host",
                          "node.yaml:16:13: artifacts[3].sha256: the sha256 contains 'g', not a "
                          "hex digit",
                          "node.yaml:18:10: artifacts[4].url: mirror.example/v is not a URL; "
                          "write https://host/path"));
}

TEST(ValidateTest, AbsentArtifactsCarryNothingElse) {
  EXPECT_THAT(errorsOf("artifacts:\n"
                       "  - path: /usr/local/bin/old\n"
                       "    ensure: absent\n"),
              IsEmpty());
  EXPECT_THAT(errorsOf("artifacts:\n"
                       "  - path: /usr/local/bin/old\n"
                       "    ensure: absent\n"
                       "    url: https://mirror.example/old\n"
                       "    mode: \"0755\"\n"),
              ElementsAre("node.yaml:6:10: artifacts[0].url: has no effect with ensure: absent",
                          "node.yaml:7:11: artifacts[0].mode: has no effect with ensure: absent"));
}

TEST(ValidateTest, ArtifactPathsAreDeclaredPaths) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /usr/local/bin/kubelet\n"
                       "artifacts:\n"
                       "  - path: /usr/local/bin/kubelet\n"
                       "    url: https://mirror.example/kubelet\n"
                       "    sha256: " +
                       std::string(kDigest) +
                       "\n"
                       "  - path: /etc/systemd/system/app.service\n"
                       "    url: https://mirror.example/app.service\n"
                       "    sha256: " +
                       std::string(kDigest) +
                       "\n"
                       "units:\n"
                       "  - name: app.service\n"
                       "    content: x\n"),
              ElementsAre("node.yaml:6:11: artifacts[0].path: /usr/local/bin/kubelet is already "
                          "declared as a file at node.yaml:4:11",
                          "node.yaml:14:14: units[0].content: the unit file "
                          "/etc/systemd/system/app.service is already declared as an artifact "
                          "at node.yaml:9:11"));
}

// The agent writes these two files itself when the state has sysctls or
// kernelModules: declared again, the two would overwrite each other.
TEST(ValidateTest, KernelConfigFilesBelongToTheAgent) {
  const std::string files =
      "files:\n"
      "  - path: /etc/sysctl.d/90-nodewarden.conf\n"
      "    content: x\n"
      "artifacts:\n"
      "  - path: /etc/modules-load.d/nodewarden.conf\n"
      "    url: https://mirror.example/modules\n"
      "    sha256: " +
      std::string(kDigest) + "\n";
  EXPECT_THAT(errorsOf(files), IsEmpty());
  EXPECT_THAT(errorsOf(files + "sysctls:\n"
                               "  net.ipv4.ip_forward: 1\n"
                               "kernelModules: [overlay]\n"),
              ElementsAre("node.yaml:4:11: files[0].path: /etc/sysctl.d/90-nodewarden.conf is "
                          "already declared as the agent's file for sysctls at node.yaml:11:3 "
                          "(sysctls)",
                          "node.yaml:7:11: artifacts[0].path: "
                          "/etc/modules-load.d/nodewarden.conf is already declared as the "
                          "agent's file for kernelModules at node.yaml:12:16 (kernelModules)"));
}

TEST(ValidateTest, SysctlNamesAreParametersAndValuesOneLine) {
  EXPECT_THAT(errorsOf("sysctls:\n"
                       "  net.ipv4.ip_forward: 1\n"
                       "  net.ipv4.conf.eth0/100.rp_filter: 2\n"
                       "  net/core/somaxconn: 4096\n"
                       "  net.ipv4.ip_local_port_range: 32768 60999\n"
                       "  net.ipv6.conf.enP2p1s0.disable_ipv6: 1\n"),
              IsEmpty());
  EXPECT_THAT(errorsOf("sysctls:\n"
                       "  \"net..ipv4\": 1\n"
                       "  \".net\": 1\n"
                       "  \"net.ipv4.ip forward\": 1\n"
                       "  \"net/../kernel\": 1\n"
                       "  \"net.//.x\": 1\n"
                       "  kernel.empty: \"\"\n"
                       "  kernel.multi: \"a\\nb\"\n"
                       "  kernel.tab: \"a\\tb\"\n"),
              ElementsAre("node.yaml:4:16: sysctls[\"net..ipv4\"]: net..ipv4 has an empty "
                          "component",
                          "node.yaml:5:11: sysctls[\".net\"]: .net starts or ends with a "
                          "separator",
                          "node.yaml:6:26: sysctls[\"net.ipv4.ip forward\"]: net.ipv4.ip forward "
                          "contains ' ', not allowed in kernel parameter names",
                          "node.yaml:7:20: sysctls[\"net/../kernel\"]: net/../kernel has a "
                          "component that is . or .. under /proc/sys",
                          "node.yaml:8:15: sysctls[\"net.//.x\"]: net.//.x has a component that "
                          "is . or .. under /proc/sys",
                          "node.yaml:9:17: sysctls[\"kernel.empty\"]: the value is empty",
                          "node.yaml:10:17: sysctls[\"kernel.multi\"]: the value spans several "
                          "lines; a kernel parameter takes one"));
}

TEST(ValidateTest, KernelModulesAreNamesUniqueWhateverTheirDashes) {
  EXPECT_THAT(errorsOf("kernelModules:\n"
                       "  - overlay\n"
                       "  - br_netfilter\n"
                       "  - br-netfilter\n"
                       "  - \"nf conntrack\"\n"
                       "  - \"\"\n"
                       "  - overlay\n"
                       "  - " +
                       std::string(56, 'm') + "\n"),
              ElementsAre("node.yaml:6:5: kernelModules[2]: br-netfilter is already declared at "
                          "node.yaml:5:5 as br_netfilter ('-' and '_' are the same to modprobe)",
                          "node.yaml:7:5: kernelModules[3]: nf conntrack contains ' ', not "
                          "allowed in module names",
                          "node.yaml:8:5: kernelModules[4]: empty; name a kernel module",
                          "node.yaml:9:5: kernelModules[5]: overlay is already declared at "
                          "node.yaml:4:5",
                          "node.yaml:10:5: kernelModules[6]: module names are at most 55 "
                          "characters"));
}

// modprobe and systemd-sysctl would read a leading '-' as an option.
TEST(ValidateTest, ModuleAndParameterNamesDoNotStartWithADash) {
  EXPECT_THAT(errorsOf("kernelModules: [--dry-run]\n"
                       "sysctls:\n"
                       "  -net.ipv4.ip_forward: \"1\"\n"),
              ElementsAre(::testing::HasSubstr("kernelModules[0]: --dry-run starts with '-'"),
                          ::testing::HasSubstr("starts with '-'")));
}

TEST(ValidateTest, RestartOnNamesPackagesArtifactsAndUnitFiles) {
  EXPECT_THAT(errorsOf("packages:\n"
                       "  - name: containerd\n"
                       "  - name: docker.io\n"
                       "    ensure: absent\n"
                       "artifacts:\n"
                       "  - path: /usr/local/bin/kubelet\n"
                       "    url: https://mirror.example/kubelet\n"
                       "    sha256: " +
                       std::string(kDigest) +
                       "\n"
                       "units:\n"
                       "  - name: kubelet.service\n"
                       "    restartOn:\n"
                       "      - containerd\n"
                       "      - /usr/local/bin/kubelet\n"
                       "      - /etc/systemd/system/app.service\n"
                       "      - /etc/systemd/system/app.service.d/10-x.conf\n"
                       "      - containerd.i\n"
                       "      - docker.io\n"
                       "      - kubeadm\n"
                       "  - name: app.service\n"
                       "    content: x\n"
                       "    dropIns:\n"
                       "      - {name: 10-x.conf, content: y}\n"),
              ElementsAre("node.yaml:18:9: units[0].restartOn[4]: containerd.i is not a package "
                          "declared in this state; did you mean containerd?",
                          "node.yaml:19:9: units[0].restartOn[5]: docker.io is declared absent "
                          "at node.yaml:6:13; only an installed package can restart a unit",
                          "node.yaml:20:9: units[0].restartOn[6]: kubeadm is not a package "
                          "declared in this state"));
}

// States from the server have no document: the same checks, with field paths.
TEST(ValidateTest, ProtoWithoutSourcesGetsPathsOnly) {
  v1::NodeState state;
  auto* file = state.add_files();
  file->set_path("/etc/a");
  file->set_mode(010000);
  auto* again = state.add_files();
  again->set_path("/etc/a");
  auto* unit = state.add_units();
  unit->set_name("a.service");
  unit->set_state(static_cast<v1::UnitState>(7));

  std::vector<std::string> errors;
  for (const auto& e : validate(state, SourceMap())) errors.push_back(e.toString());
  EXPECT_THAT(errors, ElementsAre("files[0].mode: 010000 is greater than 07777",
                                  "files[1].path: /etc/a is already declared at files[0].path",
                                  "units[0].state: unknown value 7"));
}

TEST(ValidateTest, ProtoWithoutSourcesNamesTheUnitFieldOnce) {
  v1::NodeState state;
  state.add_files()->set_path("/etc/systemd/system/a.service");
  auto* unit = state.add_units();
  unit->set_name("a.service");
  unit->set_content("[Service]\n");

  std::vector<std::string> errors;
  for (const auto& e : validate(state, SourceMap())) errors.push_back(e.toString());
  EXPECT_THAT(errors, ElementsAre("units[0].content: the unit file /etc/systemd/system/a.service "
                                  "is already declared as a file at files[0].path"));
}

TEST(ValidateTest, ProtoWithoutSourcesChecksTheNewKindsToo) {
  v1::NodeState state;
  state.add_files()->set_path("/etc/sysctl.d/90-nodewarden.conf");
  auto* package = state.add_packages();
  package->set_name("containerd");
  package->set_ensure(v1::PACKAGE_ENSURE_LATEST);
  package->set_version("1.7");
  (*state.mutable_sysctls())["net.ipv4.ip_forward"] = "1";
  (*state.mutable_sysctls())["kernel..x"] = "1";
  state.add_kernel_modules("overlay!");

  std::vector<std::string> errors;
  for (const auto& e : validate(state, SourceMap())) errors.push_back(e.toString());
  EXPECT_THAT(errors,
              ElementsAre("files[0].path: /etc/sysctl.d/90-nodewarden.conf is already declared "
                          "as the agent's file for sysctls at sysctls",
                          "packages[0].version: has no effect with ensure: latest, which "
                          "installs the archive's newest; leave ensure out to install this "
                          "version",
                          "sysctls[\"kernel..x\"]: kernel..x has an empty component",
                          "kernelModules[0]: overlay! contains '!', not allowed in module names"));
}

}  // namespace
}  // namespace nodewarden::state
