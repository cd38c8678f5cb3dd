// tests/support/catch.hpp — one include for Catch2 v2 (Debian's catch2) or v3 (FetchContent).
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define FG_CATCH3 1
#else
#include <catch2/catch.hpp>
#endif
