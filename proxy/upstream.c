/* upstream: stub, being written */
#include "upstream.h"
#include "upstream.h"
