// The gradient checker of the tests: dl::testing::gradcheck of the library (dl/testing/gradcheck.h, where
// Note [gradcheck tolerance] lives). Its result converts to ::testing::AssertionResult, so
// EXPECT_TRUE(gradcheck(f, inputs)) fails with the mismatching elements listed.
#pragma once
#include <dl/dl.h>
#include <dl/testing/gradcheck.h>
#include <gtest/gtest.h>
