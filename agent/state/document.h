#pragma once

#include <string>

namespace google::protobuf {
class Message;
}

namespace nodewarden::state {

// Renders any schema message as a document the loader reads back to an equal
// message (loadString() for a NodeState, loadMessage() for the others): the
// control plane sends desired states to agents in this form.
//
// The document is JSON, which is YAML, pretty-printed with a 2-space indent,
// and spells everything as people write it: keys are the fields' JSON names in
// field order, enums their written names ("running"), octal-mode fields
// strings ("0644"), maps objects sorted by key, repeated fields arrays, and
// 64-bit integers plain numbers. Fields the message does not hold (proto3:
// scalars at their default, unset messages, empty lists and maps) are left
// out. Characters that YAML would take as line breaks or refuses to read raw
// (U+0085, U+2028, DEL, C1 controls...) are written as \u escapes.
//
// Not representable, since no schema field needs them: maps whose keys are not
// strings, enum value 0 in a list or optional field, non-finite floating-point
// numbers. Invalid UTF-8 in a string becomes U+FFFD.
std::string toDocument(const google::protobuf::Message& message);

}  // namespace nodewarden::state
