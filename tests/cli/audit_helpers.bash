# Empty on purpose: every helper is in helpers.bash (`load helpers`); this file only keeps an old `load audit_helpers` working.
