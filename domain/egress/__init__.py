"""Where tenant-chosen URLs may lead (DESIGN.md §6, issue 21): one policy for every URL a
customer can make 0xinf contact — callback URLs and BYOK base URLs today."""
