/* log: stub, being written */
#include "log.h"
#include "log.h"
