// The sweep reads and writes JSON with libdl's one JSON value (dl/core/json.h).
#pragma once
#include "dl/core/error.h"
#include "dl/core/json.h"

namespace dl::sweep {
using Json = dl::Json;
}  // namespace dl::sweep
