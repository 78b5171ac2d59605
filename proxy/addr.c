/* addr: stub, being written */
#include "addr.h"
#include "addr.h"
