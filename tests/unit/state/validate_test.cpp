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
              ElementsAre("node.yaml:11:9: units[0].restartOn[1]: /etc/b is not a file declared "
                          "in this state",
                          "node.yaml:12:9: units[0].restartOn[2]: /etc/d is not a file declared "
                          "in this state",
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

}  // namespace
}  // namespace nodewarden::state
