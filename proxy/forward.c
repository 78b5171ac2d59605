/* forward: stub, being written */
#include "forward.h"
#include "forward.h"
