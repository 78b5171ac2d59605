/* route: stub, being written */
#include "route.h"
#include "route.h"
