// examples/cli.hpp — the examples' command lines: `--flag value` pairs, --help, and the errors
// every example reports the same way (usage_error prints the message and the usage, exits 2).
#pragma once

#include <stdexcept>
#include <string>

namespace cli {

/// Calls `on_flag(flag, value)` for each `--flag value` pair of argv, in order; it returns false
/// for a flag (or value) it does not know. --help / -h, a flag without a value, an unknown flag
/// and a value std::stoi & co. reject (std::logic_error) all end in `usage_error(message)`, which
/// must not return.
template <class Usage, class OnFlag>
void parse_flags(int argc, char** argv, const std::string& help, Usage&& usage_error, OnFlag&& on_flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage_error(help);
    }
    if (i + 1 >= argc) {
      usage_error(flag + " needs a value");
    }
    const std::string value = argv[++i];
    bool known = false;
    try {
      known = on_flag(flag, value);
    } catch (const std::logic_error&) {
      usage_error("bad value for " + flag + ": " + value);
    }
    if (!known) {
      usage_error("unknown option or value: " + flag + " " + value);
    }
  }
}

}  // namespace cli
