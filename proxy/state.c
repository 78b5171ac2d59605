/* state: stub, being written */
#include "state.h"
#include "state.h"
