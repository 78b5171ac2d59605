/* listener: stub, being written */
#include "listener.h"
#include "listener.h"
