/*
 * Poly1305's block loop for MIPS32r2 (little- and big-endian, o32 ABI),
 * for crates/openssh-chacha/src/poly_mips32.rs, which says why it exists.
 * Built by build.rs (cc) for target_arch = "mips" only.
 *
 * void roadie_poly1305_blocks(uint32_t state[10], const uint8_t *m,
 *                             size_t blocks, uint32_t hibit);
 *
 * state is r0..r4 then h0..h4 (26-bit limbs); adds each of the `blocks`
 * 16-byte little-endian blocks at m, with hibit (1 << 24, or 0 for a padded
 * last block), and multiplies by r mod 2^130 - 5, carrying as
 * poly1305-donna-32 does (every carry fits 32 bits). A 4-aligned m takes
 * plain word loads, any other the lwl/lwr pair.
 *
 * Registers: $4 state, $5 m, $6 end of m, $7 hibit; r0..r4 in $8-$12;
 * 5*r1..5*r4 in $13,$14,$15,$24; h0..h4 in $2,$3,$25,$16,$17; the new limbs
 * g0..g3 in $18-$21 (before that, the message words); $22/$23 the LO/HI of
 * a sum. Each sum of five products stays in HI:LO; the carry into the next
 * sum goes in with mtlo.
 */

/* LOADW rt, off, aligned: the little-endian word at off($5); on
 * big-endian MIPS the unaligned pair's roles swap and the word is then
 * byte-swapped. */
        .macro LOADW rt, off, aligned
        .if \aligned
        lw    \rt, \off($5)
        .else
#if defined(__MIPSEB__)
        lwl   \rt, \off($5)
        lwr   \rt, \off+3($5)
#else
        lwr   \rt, \off($5)
        lwl   \rt, \off+3($5)
#endif
        .endif
#if defined(__MIPSEB__)
        wsbh  \rt, \rt
        rotr  \rt, \rt, 16
#endif
        .endm

/* $22/$23 = LO/HI of HI:LO + h0*a0 + h1*a1 + ... + h4*a4 (first: HI:LO = 0) */
        .macro MULSUM a0, a1, a2, a3, a4, first
        .if \first
        multu $2, \a0
        .else
        maddu $2, \a0
        .endif
        maddu $3, \a1
        maddu $25, \a2
        maddu $16, \a3
        maddu $17, \a4
        mflo  $22
        mfhi  $23
        .endm

/* g = the sum ($23:$22) mod 2^26; $22 = the sum >> 26 (fits 32 bits) */
        .macro CUT g
        ext   \g, $22, 0, 26
        srl   $22, $22, 26
        ins   $22, $23, 6, 26
        .endm

/* CUT, and HI:LO = the carry, for the next sum */
        .macro CARRY g
        CUT   \g
        mtlo  $22
        mthi  $0
        .endm

/* One block: h += m (26-bit limbs cut with ext/ins), then h = h * r. */
        .macro BLOCK aligned
        LOADW $18, 0, \aligned
        LOADW $19, 4, \aligned
        ext   $20, $18, 0, 26
        addu  $2, $2, $20
        srl   $20, $18, 26
        ins   $20, $19, 6, 20
        addu  $3, $3, $20
        LOADW $18, 8, \aligned
        srl   $20, $19, 20
        ins   $20, $18, 12, 14
        addu  $25, $25, $20
        LOADW $19, 12, \aligned
        srl   $20, $18, 14
        ins   $20, $19, 18, 8
        addu  $16, $16, $20
        srl   $20, $19, 8
        or    $20, $20, $7
        addu  $17, $17, $20

        /* d0 = h0 r0 + h1 5r4 + h2 5r3 + h3 5r2 + h4 5r1, and so on */
        MULSUM $8, $24, $15, $14, $13, 1
        CARRY $18
        MULSUM $9, $8, $24, $15, $14, 0
        CARRY $19
        MULSUM $10, $9, $8, $24, $15, 0
        CARRY $20
        MULSUM $11, $10, $9, $8, $24, 0
        CARRY $21
        MULSUM $12, $11, $10, $9, $8, 0
        /* h4 = d4 mod 2^26; h0 = g0 + 5 (d4 >> 26); h1 = g1 + (h0 >> 26) */
        CUT   $17
        sll   $23, $22, 2
        addu  $22, $22, $23
        addu  $2, $18, $22
        srl   $23, $2, 26
        ext   $2, $2, 0, 26
        addu  $3, $19, $23
        move  $25, $20          /* h2 = g2; h3 = g3 in the branch's delay slot */
        addiu $5, $5, 16
        .endm

        .text
        .p2align 2
        .globl roadie_poly1305_blocks
        .type roadie_poly1305_blocks, @function
        .set push
        .set noreorder
        .set nomacro
        .set noat
roadie_poly1305_blocks:
        beqz  $6, 9f
        sll   $6, $6, 4         /* delay slot: bytes */
        addiu $sp, $sp, -32
        sw    $16, 0($sp)
        sw    $17, 4($sp)
        sw    $18, 8($sp)
        sw    $19, 12($sp)
        sw    $20, 16($sp)
        sw    $21, 20($sp)
        sw    $22, 24($sp)
        sw    $23, 28($sp)
        addu  $6, $5, $6
        lw    $8, 0($4)
        lw    $9, 4($4)
        lw    $10, 8($4)
        lw    $11, 12($4)
        lw    $12, 16($4)
        sll   $13, $9, 2
        addu  $13, $13, $9
        sll   $14, $10, 2
        addu  $14, $14, $10
        sll   $15, $11, 2
        addu  $15, $15, $11
        sll   $24, $12, 2
        addu  $24, $24, $12
        lw    $2, 20($4)
        lw    $3, 24($4)
        lw    $25, 28($4)
        lw    $16, 32($4)
        lw    $17, 36($4)
        andi  $1, $5, 3
        bnez  $1, 2f
        nop
1:
        BLOCK 1
        bne   $5, $6, 1b
        move  $16, $21
        b     3f
        nop
2:
        BLOCK 0
        bne   $5, $6, 2b
        move  $16, $21
3:
        sw    $2, 20($4)
        sw    $3, 24($4)
        sw    $25, 28($4)
        sw    $16, 32($4)
        sw    $17, 36($4)
        lw    $16, 0($sp)
        lw    $17, 4($sp)
        lw    $18, 8($sp)
        lw    $19, 12($sp)
        lw    $20, 16($sp)
        lw    $21, 20($sp)
        lw    $22, 24($sp)
        lw    $23, 28($sp)
        addiu $sp, $sp, 32
9:
        jr    $ra
        nop
        .set pop
        .size roadie_poly1305_blocks, . - roadie_poly1305_blocks
        .section .note.GNU-stack, "", @progbits
