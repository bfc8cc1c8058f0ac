#include "agent/state/validate_health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/state/loader.h"
#include "agent/state/validate.h"
#include "nodewarden/v1/state.pb.h"
#include "tests/unit/state/state_test_support.h"

namespace nodewarden::state {
namespace {

using test::errorsOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The errors of a running unit whose probe is `body`, written from line 7 at
// an indent of six spaces.
std::vector<std::string> probeErrors(std::string_view body) {
  return errorsOf(
      "units:\n"
      "  - name: app.service\n"
      "    state: running\n"
      "    probe:\n" +
      std::string(body));
}

// The errors of `body` written under remediations.diskPressure from line 5.
std::vector<std::string> diskErrors(std::string_view body) {
  return errorsOf("remediations:\n  diskPressure:\n" + std::string(body));
}

TEST(ValidateHealthTest, WellFormedProbesAreValid) {
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: http://127.0.0.1:10248/healthz\n"
                          "        expectedStatuses: [200, 204]\n"
                          "      interval: 10s\n"
                          "      timeout: 10s\n"
                          "      initialDelay: 0s\n"
                          "      failureThreshold: 5\n"
                          "      successThreshold: 2\n"),
              IsEmpty());
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: https://localhost:10250/healthz\n"
                          "        caFile: /etc/kubernetes/pki/ca.crt\n"
                          "        clientCertificate: /etc/nodewarden/probe.crt\n"
                          "        clientKey: /etc/nodewarden/probe.key\n"),
              IsEmpty());
  for (std::string_view address : {"127.0.0.1:10250", "[::1]:443", "localhost:1", "0.0.0.0:65535",
                                   "unix:/run/containerd/containerd.sock"}) {
    EXPECT_THAT(probeErrors("      tcp: {address: \"" + std::string(address) + "\"}\n"), IsEmpty())
        << address;
  }
  EXPECT_THAT(probeErrors("      exec: {command: [/usr/bin/crictl, info]}\n"), IsEmpty());
  // Turning the built-in probe off needs no check.
  EXPECT_THAT(probeErrors("      disabled: true\n"), IsEmpty());
}

TEST(ValidateHealthTest, ProbeNeedsExactlyOneCheck) {
  EXPECT_THAT(probeErrors("      interval: 5s\n"),
              ElementsAre("node.yaml:7:7: units[0].probe: set one of http, tcp or exec (or "
                          "disabled: true for no probe at all)"));
  // The loader refuses two checks before validation sees them.
  EXPECT_THAT(probeErrors("      tcp: {address: \"127.0.0.1:1\"}\n"
                          "      exec: {command: [/bin/true]}\n"),
              ElementsAre("node.yaml:8:7: units[0].probe.exec: \"tcp\" and \"exec\" are "
                          "alternatives; set only one"));
}

TEST(ValidateHealthTest, DisabledProbeTakesNothingElse) {
  EXPECT_THAT(probeErrors("      disabled: true\n"
                          "      exec: {command: [/bin/true]}\n"
                          "      interval: 5s\n"),
              ElementsAre("node.yaml:8:13: units[0].probe.exec: has no effect with disabled: true",
                          "node.yaml:9:17: units[0].probe.interval: has no effect with disabled: "
                          "true"));
}

TEST(ValidateHealthTest, ProbeOnlyOnARunningUnit) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: app.service\n"
                       "    state: stopped\n"
                       "    probe:\n"
                       "      exec: {command: [/bin/true]}\n"),
              ElementsAre("node.yaml:7:7: units[0].probe: would never run: the agent probes and "
                          "restarts only the units it keeps running, and app.service has state: "
                          "stopped; set state: running, or remove the probe"));
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: app.service\n"
                       "    probe:\n"
                       "      exec: {command: [/bin/true]}\n"),
              ElementsAre("node.yaml:6:7: units[0].probe: would never run: the agent probes and "
                          "restarts only the units it keeps running, and app.service has no "
                          "state: running (its state is left as it is); set state: running, or "
                          "remove the probe"));
  // Turning off kubelet's built-in probe is fine whatever its state.
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: kubelet.service\n"
                       "    probe: {disabled: true}\n"),
              IsEmpty());
}

TEST(ValidateHealthTest, ProbeDurationsParseAndArePositive) {
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      interval: 10x\n"
                          "      timeout: 0s\n"
                          "      initialDelay: soon\n"),
              ElementsAre("node.yaml:8:17: units[0].probe.interval: \"10x\": unit \"x\" is not "
                          "one of ms, s, m, h, d",
                          "node.yaml:9:16: units[0].probe.timeout: must be longer than 0; leave "
                          "it out for the default of 2s",
                          "node.yaml:10:21: units[0].probe.initialDelay: \"soon\" is not a "
                          "duration (examples: 90s, 5m, 1h30m)"));
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      interval: 0ms\n"),
              ElementsAre(HasSubstr("units[0].probe.interval: must be longer than 0; leave it "
                                    "out for the default of 10s")));
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      interval: 400d\n"),
              ElementsAre(HasSubstr("units[0].probe.interval: 400d is longer than 365d, the "
                                    "longest accepted here")));
}

TEST(ValidateHealthTest, TimeoutFitsInTheInterval) {
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      interval: 5s\n"
                          "      timeout: 6s\n"),
              ElementsAre("node.yaml:9:16: units[0].probe.timeout: 6s is longer than the "
                          "interval of 5s; a check must end before the next one is due"));
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      timeout: 1m\n"),
              ElementsAre("node.yaml:8:16: units[0].probe.timeout: 1m is longer than the "
                          "interval of 10s (the default); a check must end before the next one "
                          "is due"));
}

TEST(ValidateHealthTest, ThresholdsWrittenAreAtLeastOne) {
  EXPECT_THAT(probeErrors("      exec: {command: [/bin/true]}\n"
                          "      failureThreshold: 0\n"
                          "      successThreshold: 0\n"),
              ElementsAre("node.yaml:8:25: units[0].probe.failureThreshold: must be at least 1; "
                          "leave it out for the default of 3",
                          "node.yaml:9:25: units[0].probe.successThreshold: must be at least 1; "
                          "leave it out for the default of 1"));
}

TEST(ValidateHealthTest, HttpUrlIsHttpOrHttpsWithAHost) {
  auto urlErrors = [](std::string_view url) {
    return probeErrors("      http: {url: \"" + std::string(url) + "\"}\n");
  };
  EXPECT_THAT(urlErrors("http://[::1]:8080/x?y#z"), IsEmpty());
  EXPECT_THAT(urlErrors("HTTP://node.local/healthz"), IsEmpty());
  EXPECT_THAT(urlErrors("ftp://127.0.0.1/x"),
              ElementsAre("node.yaml:7:19: units[0].probe.http.url: ftp://127.0.0.1/x is not an "
                          "http:// or https:// URL"));
  EXPECT_THAT(urlErrors("127.0.0.1:10248/healthz"),
              ElementsAre(HasSubstr("127.0.0.1:10248/healthz is not a URL; write "
                                    "http://host:port/path")));
  EXPECT_THAT(urlErrors("http:///healthz"), ElementsAre(HasSubstr("http:///healthz has no host")));
  EXPECT_THAT(urlErrors("http://:80/healthz"), ElementsAre(HasSubstr("has no host")));
  EXPECT_THAT(urlErrors("http://127.0.0.1:99999/"),
              ElementsAre(HasSubstr("the port 99999 is not a number from 1 to 65535")));
  EXPECT_THAT(urlErrors("http://127.0.0.1/a b"),
              ElementsAre(HasSubstr("the URL contains a space or control character")));
  EXPECT_THAT(probeErrors("      http: {expectedStatuses: [200]}\n"),
              ElementsAre("node.yaml:7:13: units[0].probe.http.url: required; for example "
                          "http://127.0.0.1:10248/healthz"));
}

TEST(ValidateHealthTest, ExpectedStatusesAreHttpStatusCodes) {
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: http://127.0.0.1/\n"
                          "        expectedStatuses: [100, 599, 99, 600]\n"),
              ElementsAre("node.yaml:9:38: units[0].probe.http.expectedStatuses[2]: 99 is not an "
                          "HTTP status code (100 to 599)",
                          "node.yaml:9:42: units[0].probe.http.expectedStatuses[3]: 600 is not "
                          "an HTTP status code (100 to 599)"));
}

TEST(ValidateHealthTest, TlsFilesAreAbsoluteComeInPairsAndNeedHttps) {
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: https://127.0.0.1/\n"
                          "        caFile: ca.pem\n"
                          "        clientCertificate: /etc/x.crt\n"),
              ElementsAre("node.yaml:9:17: units[0].probe.http.caFile: ca.pem is not an "
                          "absolute path",
                          "node.yaml:10:28: units[0].probe.http.clientCertificate: needs "
                          "clientKey too: the key of this certificate"));
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: https://127.0.0.1/\n"
                          "        clientKey: /etc/x.key\n"),
              ElementsAre("node.yaml:9:20: units[0].probe.http.clientKey: needs "
                          "clientCertificate too: the certificate of this key"));
  EXPECT_THAT(probeErrors("      http:\n"
                          "        url: http://127.0.0.1/\n"
                          "        caFile: /etc/ca.pem\n"),
              ElementsAre("node.yaml:9:17: units[0].probe.http.caFile: has no effect on an "
                          "http:// URL; TLS is only for https://"));
}

TEST(ValidateHealthTest, TcpAddressIsLocalAndNumeric) {
  auto addressErrors = [](std::string_view address) {
    return probeErrors("      tcp: {address: \"" + std::string(address) + "\"}\n");
  };
  EXPECT_THAT(addressErrors("example.com:80"),
              ElementsAre("node.yaml:7:22: units[0].probe.tcp.address: \"example.com\" is not a "
                          "numeric IP address or localhost; probes check local endpoints and "
                          "resolve no names"));
  EXPECT_THAT(addressErrors("127.0.0.1"),
              ElementsAre(HasSubstr("127.0.0.1 has no port; write host:port (127.0.0.1:10250)")));
  EXPECT_THAT(addressErrors("127.0.0.1:"), ElementsAre(HasSubstr("has no port")));
  EXPECT_THAT(addressErrors("127.0.0.1:0"),
              ElementsAre(HasSubstr("the port 0 is not a number from 1 to 65535")));
  EXPECT_THAT(addressErrors("127.0.0.1:65536"),
              ElementsAre(HasSubstr("the port 65536 is not a number from 1 to 65535")));
  EXPECT_THAT(addressErrors("127.0.0.1:http"),
              ElementsAre(HasSubstr("the port http is not a number from 1 to 65535")));
  EXPECT_THAT(addressErrors("::1:443"),
              ElementsAre(HasSubstr("write an IPv6 address in brackets, as in [::1]:443")));
  EXPECT_THAT(addressErrors("[::g]:443"),
              ElementsAre(HasSubstr("::g is not a numeric IPv6 address")));
  EXPECT_THAT(addressErrors("[::1]"), ElementsAre(HasSubstr("[::1] has no port")));
  EXPECT_THAT(addressErrors("unix:run/x.sock"),
              ElementsAre(HasSubstr("run/x.sock is not an absolute path; write "
                                    "unix:/path/to/socket")));
  EXPECT_THAT(addressErrors("unix:/" + std::string(107, 's')),
              ElementsAre(HasSubstr("the socket path is longer than 107 bytes")));
  EXPECT_THAT(addressErrors("unix:/" + std::string(106, 's')), IsEmpty());
  EXPECT_THAT(probeErrors("      tcp: {address: \"\"}\n"),
              ElementsAre(HasSubstr("units[0].probe.tcp.address: required; write host:port "
                                    "(127.0.0.1:10250) or unix:/path/to/socket")));
}

TEST(ValidateHealthTest, ParsedAddressesAreWhatTheProberConnectsTo) {
  auto unix = parseProbeAddress("unix:/run/containerd/containerd.sock");
  ASSERT_TRUE(unix) << unix.status().message();
  EXPECT_TRUE(unix->isUnix);
  EXPECT_EQ(unix->path, "/run/containerd/containerd.sock");
  auto local = parseProbeAddress("localhost:10250");
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->isUnix);
  EXPECT_FALSE(local->isIpv6);
  EXPECT_EQ(local->host, "127.0.0.1");
  EXPECT_EQ(local->port, 10250);
  auto v6 = parseProbeAddress("[::1]:443");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->isIpv6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 443);
}

TEST(ValidateHealthTest, ExecRunsAnAbsoluteProgram) {
  EXPECT_THAT(probeErrors("      exec: {command: [crictl, info]}\n"),
              ElementsAre("node.yaml:7:24: units[0].probe.exec.command[0]: crictl is not an "
                          "absolute path; a probe's program is named by its full path "
                          "(/usr/bin/crictl) and never looked up"));
  EXPECT_THAT(probeErrors("      exec: {command: []}\n"),
              ElementsAre("node.yaml:7:23: units[0].probe.exec.command: required; the program "
                          "and its arguments, run without a shell"));
  EXPECT_THAT(probeErrors("      exec: {command: [\"\"]}\n"),
              ElementsAre(HasSubstr("units[0].probe.exec.command[0]: empty; name the program by "
                                    "its absolute path")));
}

TEST(ValidateHealthTest, DiskPressureIsValid) {
  EXPECT_THAT(diskErrors("    mounts: [/, /var/lib/containerd]\n"
                         "    thresholdPercent: 90\n"
                         "    checkInterval: 30s\n"
                         "    minInterval: 15m\n"
                         "    journalVacuumSize: 200M\n"
                         "    pruneImages: true\n"
                         "    files:\n"
                         "      - pattern: /var/log/pods/*/*/*.log.*\n"
                         "        olderThan: 7d\n"
                         "      - pattern: /var/log/syslog.[0-9]*\n"
                         "        olderThan: 12h\n"),
              IsEmpty());
  EXPECT_THAT(diskErrors("    journalVacuumSize: 1G\n"), IsEmpty());
  EXPECT_THAT(errorsOf("remediations:\n  oomKills: {kills: 5, window: 30m}\n"), IsEmpty());
}

TEST(ValidateHealthTest, DiskPressureMountsAndThreshold) {
  EXPECT_THAT(diskErrors("    mounts: [var, /var, /var, \"\"]\n"
                         "    thresholdPercent: 100\n"),
              ElementsAre("node.yaml:5:14: remediations.diskPressure.mounts[0]: var is not an "
                          "absolute path",
                          "node.yaml:5:25: remediations.diskPressure.mounts[2]: /var is already "
                          "listed at node.yaml:5:19",
                          "node.yaml:5:31: remediations.diskPressure.mounts[3]: empty; name a "
                          "mount point, like /var",
                          "node.yaml:6:23: remediations.diskPressure.thresholdPercent: 100 is not "
                          "a percentage from 1 to 99; leave it out for the default of 85"));
  EXPECT_THAT(diskErrors("    thresholdPercent: 0\n"),
              ElementsAre(HasSubstr("thresholdPercent: 0 is not a percentage from 1 to 99")));
}

TEST(ValidateHealthTest, DiskPressureDurationsAndJournalSize) {
  EXPECT_THAT(diskErrors("    checkInterval: 0s\n"
                         "    minInterval: often\n"
                         "    journalVacuumSize: 200\n"),
              ElementsAre("node.yaml:5:20: remediations.diskPressure.checkInterval: must be "
                          "longer than 0; leave it out for the default of 1m",
                          "node.yaml:6:18: remediations.diskPressure.minInterval: \"often\" is "
                          "not a duration (examples: 90s, 5m, 1h30m)",
                          "node.yaml:7:24: remediations.diskPressure.journalVacuumSize: \"200\" "
                          "is not a size like 200M or 1G (digits and one of K, M, G, T)"));
  for (std::string_view bad : {"M", "200MB", "2.5G", "-1G", "200m"}) {
    EXPECT_THAT(diskErrors("    journalVacuumSize: \"" + std::string(bad) + "\"\n"),
                ElementsAre(HasSubstr("is not a size like 200M or 1G")))
        << bad;
  }
  EXPECT_THAT(diskErrors("    journalVacuumSize: 0M\n"),
              ElementsAre(HasSubstr("\"0M\" keeps nothing of the journal")));
}

TEST(ValidateHealthTest, CleanupPatternsStayOutOfSystemDirectories) {
  auto patternErrors = [](std::string_view pattern) {
    return diskErrors("    files:\n      - pattern: \"" + std::string(pattern) +
                      "\"\n        olderThan: 7d\n");
  };
  const std::string why =
      "; a cleanup pattern starts with 2 plain directory names, so that it cannot match the "
      "system's top-level directories (write /var/log/pods/*/*/*.log.*, not /var/*)";
  EXPECT_THAT(patternErrors("/"),
              ElementsAre("node.yaml:6:18: remediations.diskPressure.files[0].pattern: / is the "
                          "root directory" +
                          why));
  EXPECT_THAT(patternErrors("/*"),
              ElementsAre("node.yaml:6:18: remediations.diskPressure.files[0].pattern: /* has a "
                          "wildcard in its first 2 components" +
                          why));
  for (std::string_view bad : {"/var/*", "/*/log/x", "/v?r/log/x", "/var/[a-z]*/x", "/var*"}) {
    EXPECT_THAT(patternErrors(bad), ElementsAre(HasSubstr("has a wildcard in its first 2"))) << bad;
  }
  EXPECT_THAT(patternErrors("var/log/*"), ElementsAre(HasSubstr("var/log/* is not an absolute "
                                                                "path")));
  EXPECT_THAT(patternErrors("/var/log/../lib/*"), ElementsAre(HasSubstr("contains a .. "
                                                                        "component")));
  EXPECT_THAT(patternErrors("/var//log/*"), ElementsAre(HasSubstr("has an empty or . component")));
  EXPECT_THAT(patternErrors("/var/log/*"), IsEmpty());
  EXPECT_THAT(patternErrors("/opt/app"), IsEmpty());
}

TEST(ValidateHealthTest, CleanupNeedsAnAge) {
  EXPECT_THAT(diskErrors("    files:\n      - pattern: /var/log/app/*.log\n"),
              ElementsAre("node.yaml:6:9: remediations.diskPressure.files[0].olderThan: "
                          "required; only files not modified for this long are removed (7d, "
                          "12h)"));
  EXPECT_THAT(diskErrors("    files:\n      - {pattern: /var/log/app/*.log, olderThan: 0d}\n"),
              ElementsAre("node.yaml:6:50: remediations.diskPressure.files[0].olderThan: must be "
                          "longer than 0"));
  EXPECT_THAT(diskErrors("    files:\n      - {olderThan: 1d}\n"),
              ElementsAre(HasSubstr("files[0].pattern: required; an absolute glob like "
                                    "/var/log/pods/*/*/*.log.*")));
}

TEST(ValidateHealthTest, OomKillsCountAndWindow) {
  EXPECT_THAT(errorsOf("remediations:\n  oomKills:\n    kills: 0\n    window: 0s\n"),
              ElementsAre("node.yaml:5:12: remediations.oomKills.kills: must be at least 1; "
                          "leave it out for the default of 3",
                          "node.yaml:6:13: remediations.oomKills.window: must be longer than 0; "
                          "leave it out for the default of 1h"));
}

// A state from the server has no positions: a 0 there is a field left out.
TEST(ValidateHealthTest, ZerosWithoutADocumentAreDefaults) {
  v1::NodeState state;
  auto* unit = state.add_units();
  unit->set_name("app.service");
  unit->set_state(v1::UNIT_STATE_RUNNING);
  unit->mutable_probe()->mutable_tcp()->set_address("127.0.0.1:80");
  unit->mutable_probe()->set_failure_threshold(0);
  state.mutable_remediations()->mutable_oom_kills()->set_kills(0);
  state.mutable_remediations()->mutable_disk_pressure()->set_threshold_percent(0);
  EXPECT_THAT(validate(state, SourceMap()), IsEmpty());
  unit->mutable_probe()->set_timeout("1h");
  std::vector<std::string> errors;
  for (const auto& d : validate(state, SourceMap())) errors.push_back(d.toString());
  EXPECT_THAT(errors, ElementsAre("units[0].probe.timeout: 1h is longer than the interval of 10s "
                                  "(the default); a check must end before the next one is due"));
}

TEST(ValidateHealthTest, ExamplesAreValid) {
  for (const char* name : {"worker-node.yaml", "control-plane-node.yaml"}) {
    const std::string path = std::string(NODEWARDEN_EXAMPLES_DIR) + "/" + name;
    LoadResult result = loadFile(path);
    std::vector<std::string> errors;
    for (const auto& error : result.errors) errors.push_back(error.toString());
    EXPECT_THAT(errors, IsEmpty()) << path;
  }
}

}  // namespace
}  // namespace nodewarden::state
