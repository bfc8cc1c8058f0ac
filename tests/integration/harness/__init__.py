"""Integration-test harness: nodes that boot a real systemd in systemd-nspawn containers.

rootfs builds and caches the Debian tree the nodes share; node.Node boots one node on it.
"""
