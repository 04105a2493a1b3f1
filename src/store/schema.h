/* schema.h - the list of schema migrations (see schema.c). */
#ifndef TANDEM_STORE_SCHEMA_H
#define TANDEM_STORE_SCHEMA_H

extern const char *const schema_migrations[];
extern const int schema_migration_count;

#endif
