/*
 * swoop: multi-process network servers for C. This umbrella header includes
 * every public module; each can also be included on its own.
 */
#ifndef SWOOP_SWOOP_H
#define SWOOP_SWOOP_H

#include <swoop/common.h>
#include <swoop/error.h>
#include <swoop/alloc.h>
#include <swoop/log.h>
#include <swoop/loop.h>
#include <swoop/timer.h>
#include <swoop/shm.h>
#include <swoop/atomic.h>
#include <swoop/lock.h>
#include <swoop/table.h>
#include <swoop/process.h>
#include <swoop/socket.h>
#include <swoop/server.h>
#include <swoop/http.h>
#include <swoop/websocket.h>

#endif /* SWOOP_SWOOP_H */
