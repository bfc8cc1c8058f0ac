#pragma once

#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

// A node's desired state: its group's state `base` with the node's
// `overrides` laid over it. An override says only what differs for the node:
//
// - directories, files and artifacts (by path), units and packages (by name):
//   an override entry replaces the base entry of the same identity whole, in
//   its place; entries the base does not have are appended in their order.
//   Nothing is merged inside an entry, and none is removed: an override
//   turns one around on its node with `ensure: absent` (a unit: stopped and
//   disabled).
// - kernelModules: the base's, then the override's that the base lacks.
// - sysctls and metadata.labels: merged by key; the override's value wins.
// - apiVersion, kind and metadata.name: the override's when it sets them.
// - remediations: the override's, whole, when it sets them (even empty).
//
// The result is not validated: the caller checks it like any other state.
v1::NodeState mergeOverrides(const v1::NodeState& base, const v1::NodeState& overrides);

}  // namespace nodewarden::state
