/*
 * A qemu-user TCG plugin: counts the emulated program's own guest
 * instructions and its syscalls, for scripts/bench-router.
 *
 *   qemu-mipsel -plugin insns.so,out=FILE[,syms=FILE2] PROGRAM ...
 *
 * out=FILE: the counters live in FILE, mapped shared, so the bench reads
 * them while the program runs (before and after a transfer), no signal or
 * exit needed. Layout, little-endian u64 words:
 *   [0] magic "RDINSNS1"  [1] layout version (1)  [2] SLOTS  [3] NSYS
 *   [8 .. 8+SLOTS)                  guest instructions, one slot per vCPU
 *                                   (qemu-user: one per guest thread)
 *   [8+SLOTS .. 8+SLOTS+NSYS)       calls per guest syscall number
 *   [8+SLOTS+NSYS .. 8+SLOTS+2NSYS) sum of each syscall's 2nd argument
 *                                   (the length for mmap, mmap2, munmap)
 * syms=FILE2: also attribute instructions to the symbol of each
 * translation block's first instruction (a binary with symbols), written
 * as "instructions<TAB>symbol" lines at exit.
 *
 * Debian 12 ships no qemu-plugin.h, so the few API functions used are
 * declared here, as qemu 7.2's include/qemu/qemu-plugin.h has them
 * (plugin API version 1).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* --- qemu 7.2 plugin API, the part used here --------------------------- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
	const char *target_name;
	struct {
		int min;
		int cur;
	} version;
	int system_emulation; /* bool in qemu; only read as a flag */
	union {
		struct {
			int smp_vcpus;
			int max_vcpus;
		} system;
	};
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
					      uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
					      uint64_t a6, uint64_t a7, uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
					  enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);
/* ----------------------------------------------------------------------- */

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define SLOTS 64
#define NSYS 8192
#define HEADER 8
#define WORDS (HEADER + SLOTS + 2 * NSYS)

static uint64_t *mem; /* the shared counters file */

/* Profile mode: one entry per symbol, keyed by the pointer qemu returns
 * (qemu's symbol table lives as long as the process). Translation is
 * serialised in qemu-user, so the table needs no lock; the counts are
 * added without atomics (a race between guest threads can lose a few). */
#define SYMTAB 65536
struct sym {
	const char *name;
	uint64_t insns;
};
struct tb_info {
	struct sym *sym;
	uint64_t n;
};
static struct sym *symtab;
static char *syms_path;

static void tb_exec(unsigned int vcpu, void *udata)
{
	uint64_t n = (uintptr_t)udata;
	if (vcpu < SLOTS - 1) {
		/* one writer per slot: a plain (untorn) 64-bit store suffices */
		uint64_t *s = &mem[HEADER + vcpu];
		__atomic_store_n(s, __atomic_load_n(s, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&mem[HEADER + SLOTS - 1], n, __ATOMIC_RELAXED);
	}
}

static void tb_exec_sym(unsigned int vcpu, void *udata)
{
	struct tb_info *t = udata;
	t->sym->insns += t->n;
	tb_exec(vcpu, (void *)(uintptr_t)t->n);
}

static struct sym *lookup(const char *name)
{
	size_t h = ((uintptr_t)name >> 3) * 0x9E3779B97F4A7C15ull >> 48;
	for (size_t i = 0; i < SYMTAB; i++) {
		struct sym *s = &symtab[(h + i) % SYMTAB];
		if (s->name == name)
			return s;
		if (!s->name) {
			s->name = name;
			return s;
		}
	}
	return &symtab[0]; /* full: lump the rest together */
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	size_t n = qemu_plugin_tb_n_insns(tb);
	if (!symtab) {
		qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
		return;
	}
	const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
	struct tb_info *t = malloc(sizeof *t);
	if (!t)
		abort();
	t->sym = lookup(name ? name : "?");
	t->n = n;
	qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec_sym, QEMU_PLUGIN_CB_NO_REGS, t);
}

static void syscall_cb(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
		       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
	(void)id, (void)vcpu, (void)a1, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
	if (num < 0 || num >= NSYS)
		return;
	__atomic_fetch_add(&mem[HEADER + SLOTS + num], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&mem[HEADER + SLOTS + NSYS + num], a2, __ATOMIC_RELAXED);
}

static int by_insns(const void *a, const void *b)
{
	uint64_t x = ((const struct sym *)a)->insns, y = ((const struct sym *)b)->insns;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
	(void)id, (void)udata;
	if (!symtab)
		return;
	qsort(symtab, SYMTAB, sizeof *symtab, by_insns);
	FILE *f = fopen(syms_path, "w");
	if (!f) {
		qemu_plugin_outs("insns: cannot write the syms file\n");
		return;
	}
	for (size_t i = 0; i < SYMTAB && symtab[i].insns; i++)
		fprintf(f, "%llu\t%s\n", (unsigned long long)symtab[i].insns, symtab[i].name);
	fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
							       int argc, char **argv)
{
	const char *out = NULL;
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			out = argv[i] + 4;
		else if (!strncmp(argv[i], "syms=", 5))
			syms_path = argv[i] + 5;
		else {
			fprintf(stderr, "insns: unknown argument %s (out=FILE, syms=FILE)\n", argv[i]);
			return -1;
		}
	}
	if (!out) {
		fprintf(stderr, "insns: out=FILE is required\n");
		return -1;
	}
	int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, WORDS * 8) != 0) {
		perror("insns: out file");
		return -1;
	}
	mem = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED) {
		perror("insns: mmap");
		return -1;
	}
	memcpy(&mem[0], "RDINSNS1", 8);
	mem[1] = 1, mem[2] = SLOTS, mem[3] = NSYS;
	if (syms_path && !(symtab = calloc(SYMTAB, sizeof *symtab))) {
		perror("insns: symbol table");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_vcpu_syscall_cb(id, syscall_cb);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
