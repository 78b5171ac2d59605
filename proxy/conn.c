/* conn: stub, being written */
#include "conn.h"
#include "conn.h"
