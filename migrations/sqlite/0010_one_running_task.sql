-- At most one running task per target (a package, a binary): two processes
-- never sync the same thing at once. Claims skip a task whose target runs;
-- this index settles the race of two claims at the same instant.
CREATE UNIQUE INDEX tasks_one_running ON tasks(type, target) WHERE state = 'processing';
